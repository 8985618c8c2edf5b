"""Copies of the shipped protocol file with one value changed, for tests of protocol-as-code."""

from __future__ import annotations

from pathlib import Path

from reluth.protocol.definition import DEFAULT_PATH

PLATELETS_LINE = '  platelets_min_10e9_l: "{}"\n'


def amended_copy(directory: Path, platelets_10e9_l: str) -> Path:
    """``reluth.yaml`` with the platelet threshold of I11 set to ``platelets_10e9_l`` x 10^9/L
    (the file says 80, i.e. 80 000/mm3); nothing else changes."""
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    shipped = PLATELETS_LINE.format("80")
    assert text.count(shipped) == 1, "the shipped threshold line moved"
    path = directory / f"reluth-platelets-{platelets_10e9_l}.yaml"
    path.write_text(text.replace(shipped, PLATELETS_LINE.format(platelets_10e9_l)), "utf-8")
    return path
