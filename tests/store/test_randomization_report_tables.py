"""The report's per-group tables (page and CLI): counts in arm order and the imbalance."""

from __future__ import annotations

from reluth.randomization.service import Report, imbalance


def _report() -> Report:
    return Report(
        method="blocks",
        total=5,
        by_arm={"experimental": 3, "control": 2},
        by_stratum={
            "S1": {"experimental": 3, "control": 0},
            "S2": {"experimental": 0, "control": 2},
        },
        by_centre={
            "C01": {"experimental": 2, "control": 2},
            "C02": {"experimental": 1, "control": 0},
        },
        by_factor_level={"f=a": {"experimental": 3, "control": 2}},
        max_imbalance={"overall": 1, "stratum": 3, "centre": 1, "factor_level": 1},
        list_intact=True,
    )


def test_tables_give_counts_in_arm_order_and_the_imbalance_of_each_group() -> None:
    tables = _report().tables()
    assert list(tables) == ["stratum", "centre", "factor level"]
    assert tables["stratum"] == [("S1", [3, 0], 3), ("S2", [0, 2], 2)]
    assert tables["centre"] == [("C01", [2, 2], 0), ("C02", [1, 0], 1)]
    assert tables["factor level"] == [("f=a", [3, 2], 1)]


def test_imbalance_is_symmetric_and_counts_a_missing_arm_as_zero() -> None:
    assert imbalance({"a": 4, "b": 1}, ("a", "b")) == imbalance({"a": 1, "b": 4}, ("a", "b")) == 3
    assert imbalance({"a": 2}, ("a", "b")) == 2
