"""``reluth record conmed|medical-history|withdrawal|deviation|pregnancy-test|childbearing
FILE.json``: one record or a list, all or nothing in one audited unit of work, as the logged-in
user; a bad field is one line naming it and exit code 2, a refused role exit code 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from storekit import add_account, cli_token, ready_patients
from typer.testing import CliRunner

from reluth.auth.roles import Role
from reluth.cli import app
from reluth.clinical.models import ConcomitantMedication
from reluth.db.audit import AuditLog
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import read_session

runner = CliRunner()


@pytest.fixture
def trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, dict[str, str]]:
    url = f"sqlite:///{tmp_path / 'trial.db'}"
    engine = make_engine(url)
    upgrade(engine)
    code = ready_patients(engine, 1)[0]
    add_account(engine, "rev1", Role.CENTRAL_REVIEWER)
    tokens = {name: cli_token(engine, name) for name in ("nurse1", "rev1")}
    engine.dispose()
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("RELUTH_DATABASE_URL", url)
    return url, code, tokens


def _file(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def _count(url: str) -> tuple[int, set[str]]:
    engine = make_engine(url)
    with read_session(engine) as s:
        n = s.scalar(select(func.count()).select_from(ConcomitantMedication)) or 0
        who = set(
            s.scalars(
                select(AuditLog.username).where(AuditLog.table_name == "concomitant_medications")
            )
        )
    engine.dispose()
    return n, who


def test_record_conmed_list_all_or_nothing(
    trial: tuple[str, str, dict[str, str]], tmp_path: Path
) -> None:
    url, code, tokens = trial
    med = {"patient_id": code, "drug_name": "Lanreotide", "atc_code": "H01CB03",
           "indication": "carcinoid", "dose": "120", "unit": "mg", "route": "subcutaneous",
           "start_date": "2023-01-10", "ongoing": True}  # fmt: skip
    bad = {**med, "atc_code": "HH"}
    refused = runner.invoke(
        app, ["record", "conmed", _file(tmp_path, "bad.json", [med, bad])],
        env={"RELUTH_TOKEN": tokens["nurse1"]},
    )  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "atc_code" in refused.output and "Traceback" not in refused.output
    assert _count(url)[0] == 0  # the first record is not kept either
    done = runner.invoke(
        app, ["record", "conmed", _file(tmp_path, "ok.json", [med, med]), "--json"],
        env={"RELUTH_TOKEN": tokens["nurse1"]},
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert [d["patient_id"] for d in json.loads(done.output)] == [code, code]
    assert _count(url) == (2, {"nurse1"})
    denied = runner.invoke(
        app, ["record", "conmed", _file(tmp_path, "one.json", med)],
        env={"RELUTH_TOKEN": tokens["rev1"]},
    )  # fmt: skip
    assert denied.exit_code == 4, denied.output


@pytest.mark.parametrize(
    ("command", "fields", "shown"),
    [
        ("medical-history", {"condition": "Hypertension", "ongoing": True}, "medical history"),
        (
            "deviation",
            {"category": "eligibility", "severity": "minor", "deviation_date": "2025-01-05",
             "description": "late visit"},
            "protocol deviation",
        ),
        ("withdrawal", {"kind": "treatment", "withdrawal_date": "2025-01-05"}, "withdrawal"),
    ],
)  # fmt: skip
def test_record_other_forms(
    trial: tuple[str, str, dict[str, str]],
    tmp_path: Path,
    command: str,
    fields: dict[str, object],
    shown: str,
) -> None:
    _url, code, tokens = trial
    path = _file(tmp_path, "form.json", {"patient_id": code, **fields})
    done = runner.invoke(app, ["record", command, path], env={"RELUTH_TOKEN": tokens["nurse1"]})
    assert done.exit_code == 0, done.output
    assert f"{shown} " in done.output and code in done.output
    missing = _file(tmp_path, "nobody.json", fields)
    refused = runner.invoke(
        app, ["record", command, missing], env={"RELUTH_TOKEN": tokens["nurse1"]}
    )
    assert refused.exit_code == 2 and "Patient ID: missing" in refused.output
