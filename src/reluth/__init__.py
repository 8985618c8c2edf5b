"""reluth: the ReLUTH trial platform (protocol as code, trial database, engines, analysis)."""

__version__ = "0.1.0"
