"""``python -m reluth``: the same command line as ``reluth``."""

from reluth.cli import main

main()
