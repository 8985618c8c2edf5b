from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
from typer.testing import CliRunner

from reluth.cli import app

runner = CliRunner()


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["images", *args], env=env)
    return result.exit_code, result.output


def _physicist_token(db: str) -> dict[str, str]:
    """A migrated trial database with a medical physicist, and the physicist's CLI login."""
    from tests.store.storekit import add_account, add_users, cli_token

    from reluth.auth.roles import Role
    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade

    engine = make_engine(db)
    upgrade(engine)
    add_users(engine)
    add_account(engine, "phys1", Role.MEDICAL_PHYSICIST)
    token = cli_token(engine, "phys1")
    engine.dispose()
    return {"RELUTH_TOKEN": token}


def test_site_and_central_workflow(tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    key.write_text("a" * 48)
    raw, out = tmp_path / "raw", tmp_path / "out"
    code, text = _run(
        "synthesize",
        str(raw),
        "--matrix",
        "32",
        "--ct-slices",
        "2",
        "--ct-size",
        "32",
        "--timepoints",
        "4h,24h",
    )
    assert code == 0, text
    code, text = _run(
        "deidentify",
        str(raw),
        str(out),
        "--patient-id",
        "C07-0012",
        "--key",
        str(key),
        "--cycle",
        "1",
        "--json",
    )
    assert code == 0, text
    report = json.loads(text)
    assert report["written"] == 6 and report["skipped"] == 0
    code, text = _run("verify-deid", str(out), "--forbid", "DUPONT", "--key", str(key))
    assert code == 0, text
    assert "findings: 0" in text
    code, text = _run("verify-deid", str(raw))
    assert code == 1 and "findings" in text
    code, text = _run("qc", str(out), "--json")
    assert code == 0, text
    series = json.loads(text)["series"]
    assert {s["modality"] for s in series} == {"NM", "CT"}
    assert {s["time_point"] for s in series} == {"4h", "24h"}
    db = f"sqlite:///{tmp_path / 'trial.db'}"
    store = str(tmp_path / "store")
    physicist = _physicist_token(db)
    code, text = _run("ingest", str(out), "--db", db, "--store", store)
    assert code == 4 and "not logged in" in text  # the central store needs a login
    code, text = _run("ingest", str(out), "--db", db, "--store", store, "--json", env=physicist)
    assert code == 0, text
    assert json.loads(text)["stored"] == 6
    code, text = _run("ingest", str(raw), "--db", db, "--store", store, env=physicist)
    assert code == 1 and "refused" in text


def test_qc_exit_code_on_failure(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _run(
        "synthesize",
        str(raw),
        "--matrix",
        "16",
        "--ct-slices",
        "0",
        "--timepoints",
        "24h",
        "--fault",
        "wrong_collimator",
    )
    code, text = _run("qc", str(raw))
    assert code == 1
    assert "FAIL" in text


def test_bad_input_gives_one_clear_message(tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    key.write_text("a" * 48)
    (tmp_path / "in").mkdir()
    code, text = _run(
        "deidentify",
        str(tmp_path / "in"),
        str(tmp_path / "o"),
        "--patient-id",
        "DUPONT",
        "--key",
        str(key),
    )
    assert code == 2 and "--patient-id" in text and "Traceback" not in text
    code, text = _run(
        "deidentify",
        str(tmp_path / "in"),
        str(tmp_path / "o"),
        "--patient-id",
        "C07-0012",
        "--key",
        str(tmp_path / "none.key"),
    )
    assert code == 2 and "key file not found" in text
    code, text = _run(
        "deidentify",
        str(tmp_path / "in"),
        str(tmp_path / "in" / "o"),
        "--patient-id",
        "C07-0012",
        "--key",
        str(key),
    )
    assert code == 2 and "outside IN_DIR" in text
    code, text = _run("qc", str(tmp_path / "in"), "--planned-timepoints", "soon")
    assert code == 2 and "--planned-timepoints" in text
    code, text = _run("synthesize", str(tmp_path / "s"), "--fault", "bad_luck")
    assert code == 2 and "--fault" in text


def test_qc_with_the_example_calibration_file(tmp_path: Path) -> None:
    calibration = Path(__file__).resolve().parents[2] / "examples/imaging/calibration.json"
    raw = tmp_path / "raw"
    _run("synthesize", str(raw), "--matrix", "16", "--ct-slices", "0", "--timepoints", "24h")
    nm = next(raw.rglob("NM*.dcm"))
    ds = pydicom.dcmread(nm)
    ds.Units = "CNTS"  # counts: needs the camera's calibration factor
    ds.save_as(nm)
    code, text = _run("qc", str(raw), "--json")
    assert code == 1 and "no calibration factor for device SN-44871" in text
    code, text = _run("qc", str(raw), "--json", "--calibration", str(calibration))
    assert code == 0, text
    checks = {c["name"]: c for c in json.loads(text)["series"][0]["checks"]}
    assert checks["units"]["status"] == "PASS" and "9.62" in checks["units"]["reason"]


def test_imaging_commands_import_the_dicom_stack_only_when_run() -> None:
    """pydicom (with numpy) and the profile table load inside the commands that use them."""
    code = (
        "import sys, reluth.imaging.cli; "
        "print(sorted(m for m in ('pydicom', 'numpy', 'reluth.imaging.profile', "
        "'reluth.imaging.batch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
