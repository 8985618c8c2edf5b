from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "patients"


@pytest.fixture
def base_patient() -> dict[str, Any]:
    return json.loads((EXAMPLES / "eligible.json").read_text(encoding="utf-8"))


@pytest.fixture
def modified(base_patient: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Return a copy of the eligible example with ``path=value`` changes (dotted paths)."""

    def make(**changes: Any) -> dict[str, Any]:
        data = copy.deepcopy(base_patient)
        for dotted, value in changes.items():
            keys = dotted.split("__")
            node = data
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            if value is _DELETE:
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value
        return data

    return make


class _Delete:
    pass


_DELETE = _Delete()


@pytest.fixture
def DELETE() -> _Delete:
    return _DELETE
