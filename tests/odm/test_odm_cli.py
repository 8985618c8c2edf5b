"""The README's ODM commands run: `reluth export odm --out` (and --no-audit) writes a document
and records the export; `reluth import odm --dry-run` reports per form and patient and writes
nothing; `reluth import odm` imports into an empty database; bad input exits non-zero with one
message."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.store.storekit import INVESTIGATOR, STAT, add_users, cli_token, ready_patients
from typer.testing import CliRunner

from reluth.cli import app
from reluth.db.audit import AuditLog
from reluth.db.engine import make_engine
from reluth.db.session import read_session
from reluth.odm.export import NS
from reluth.patients.models import Patient


def _run(cli: CliRunner, env: dict[str, str], *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args), env=env)
    assert result.exit_code == code, (args, result.output)
    return result.output


def _database(tmp_path: Path, template: Path, name: str, patients: int) -> tuple[str, str, str]:
    path = tmp_path / f"{name}.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    if patients:
        ready_patients(engine, patients)
    else:
        add_users(engine)
    tokens = cli_token(engine, STAT), cli_token(engine, INVESTIGATOR)
    engine.dispose()
    return url, *tokens


def _count(url: str, what: object) -> int:
    engine = make_engine(url)
    try:
        with read_session(engine) as s:
            return int(s.scalar(select(func.count()).select_from(what)) or 0)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_the_readme_commands_run(
    tmp_path: Path, _sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, stat, _inv = _database(tmp_path, _sqlite_template, "source", 2)
    target, _stat2, inv2 = _database(tmp_path, _sqlite_template, "target", 0)
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    env = {"RELUTH_DATABASE_URL": source, "RELUTH_TOKEN": stat}
    out = _run(cli, env, "export", "odm", "--out", "reluth-odm.xml")
    assert "2 patients" in out
    _run(cli, env, "export", "odm", "--out", "data.xml", "--no-audit")
    root = ET.parse(tmp_path / "reluth-odm.xml").getroot()
    assert root.tag == f"{{{NS}}}ODM" and root.get("ODMVersion") == "1.3.2"
    assert ET.parse(tmp_path / "data.xml").getroot().find(f".//{{{NS}}}AuditRecord") is None
    engine = make_engine(source)
    with read_session(engine) as s:
        exports = s.scalars(select(AuditLog).where(AuditLog.table_name == "exports")).all()
    engine.dispose()
    assert [e.record_id for e in exports] == ["odm-export", "odm-export"]

    env = {"RELUTH_DATABASE_URL": target, "RELUTH_TOKEN": inv2}
    dry = json.loads(_run(cli, env, "import", "odm", "reluth-odm.xml", "--dry-run", "--json"))
    assert dry["dry_run"] and dry["patients"] == 2
    assert dry["per_patient"]["C01-0001"]["cycle"] == 2
    assert _count(target, Patient) == 0
    out = _run(cli, env, "import", "odm", "reluth-odm.xml")
    assert "imported" in out and "C02-0002" in out
    assert _count(target, Patient) == 2
    # the same file again: the patients exist; one message, nothing more written
    out = _run(cli, env, "import", "odm", "reluth-odm.xml", code=6)  # Conflict
    assert "already registered" in out and "Traceback" not in out
    (tmp_path / "bad.xml").write_text("<ODM/>", encoding="utf-8")
    out = _run(cli, env, "import", "odm", "bad.xml", code=2)
    assert "ODM" in out and "Traceback" not in out
    assert _count(target, Patient) == 2


def test_import_with_a_map_reports_the_mapping_used(tmp_path: Path, _sqlite_template: Path) -> None:
    """The README's `--map` command: another EDC's file, dry run, the mapping reported."""
    from tests.store.storekit import NURSE

    data = Path(__file__).parent / "data"
    path = tmp_path / "target.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    ready_patients(engine, 1)
    token = cli_token(engine, NURSE)
    engine.dispose()
    cli = CliRunner()
    env = {"RELUTH_DATABASE_URL": url, "RELUTH_TOKEN": token}
    xml, oid_map = str(data / "openclinica-2021.xml"), str(data / "openclinica-map.yaml")
    dry = json.loads(_run(cli, env, "import", "odm", xml, "--map", oid_map, "--dry-run", "--json"))
    assert dry["forms"] == {"medical_history": 1, "qol": 1}
    assert dry["mapping"]["items"]["I_QLQC3_Q01 -> I.qol.items/1"] == 1
    out = _run(cli, env, "import", "odm", xml, "--map", oid_map, "--dry-run")
    assert "map forms: F_QLQC30_V30 -> F.qol (1)" in out
    out = _run(cli, env, "import", "odm", xml, code=2)  # without the map: one message
    assert "F_MEDHIST_V10" in out and "--map" in out and "Traceback" not in out
    out = _run(cli, env, "import", "odm", xml, "--map", str(tmp_path / "none.yaml"), code=2)
    assert "none.yaml" in out
