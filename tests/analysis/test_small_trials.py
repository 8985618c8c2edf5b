"""A trial too small for some statistics still gets its report: a log-rank test with no event
to compare in any stratum is "not estimable" (as SAS PROC LIFETEST leaves it missing), never a
traceback, and results.json stays strict JSON (null, not NaN)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from reluth.analysis.survival import logrank
from reluth.analysis.synthetic import write_synthetic_csv
from reluth.cli import app
from reluth.protocol.definition import load_protocol

PROTOCOL = load_protocol()


def test_logrank_without_comparable_events_is_not_estimable() -> None:
    # Two strata, each holding one arm only: no risk set ever has both groups.
    res = logrank([1, 2, 3, 4], [1, 1, 1, 1], ["a", "a", "b", "b"], ["s1", "s1", "s2", "s2"])
    assert res.chisq != res.chisq and res.p != res.p and res.df == 1  # NaN


def test_a_twelve_patient_trial_reports_without_traceback(tmp_path: Path) -> None:
    write_synthetic_csv(tmp_path / "data", n_included=12, seed=3, protocol=PROTOCOL)
    res = CliRunner().invoke(
        app, ["analyze", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "not estimable (no event where the arms can be compared" in html
    text = (tmp_path / "out" / "results.json").read_text(encoding="utf-8")

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in results.json")

    json.loads(text, parse_constant=refuse)
