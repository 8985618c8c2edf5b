"""The layering contracts of `make lint` can fail: the cycle finder finds cycles (and only
cycles), and each contract the architecture needs is configured."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tools.import_contracts import strongly_connected

ROOT = Path(__file__).resolve().parents[2]


def test_cycles_are_found_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"x": {"y"}, "y": set()}) == []
    assert strongly_connected({"p": {"q"}, "q": {"p"}, "r": {"s"}, "s": {"r"}}) == [
        ["p", "q"],
        ["r", "s"],
    ]


def test_the_architecture_contracts_are_configured() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}
    assert set(contracts) >= {
        "engines-are-pure",
        "db-imports-no-domain",
        "domains-import-no-adapters",
        "no-cycles",
    }
    assert "sqlalchemy" in contracts["engines-are-pure"]["forbidden_modules"]
    assert "reluth.web" in contracts["domains-import-no-adapters"]["forbidden_modules"]
