"""docs/architecture.md stays true to the files: every module of the package is named there, and
every module path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "reluth"
DOC = ROOT / "docs" / "architecture.md"


def _modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py":
            continue
        found.add(rel.with_suffix("").as_posix())
    return found


def _named(text: str) -> set[str]:
    """Module paths named in the page: ``pkg/mod.py`` and, in a migrations list, bare ``000N_x``."""
    named = {
        m[:-3] for m in re.findall(r"(?<![a-z0-9_])[a-z_][a-z0-9_]*(?:/[a-z0-9_]+)*\.py", text)
    }
    named |= {
        f"db/migrations/versions/{m}" for m in re.findall(r"`(\d{4}_[a-z0-9_]+)(?:\.py)?`", text)
    }
    return named


def test_every_module_is_described() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = _named(text)
    missing = sorted(m for m in _modules() if m not in named)
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_every_named_module_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    modules = _modules()
    gone = sorted(
        m for m in _named(text) if "/" in m and m not in modules and not (ROOT / f"{m}.py").exists()
    )
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
