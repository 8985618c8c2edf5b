"""`reluth dosimetry from-store`: a synthetic DICOM study with known truth (SPECT in counts with
a calibration and in BQML with every DecayCorrection, a Real World Value Mapping, CT, an
RTSTRUCT with left/right kidneys, a time point shifted by the patient moving, spheres of three
sizes) goes through de-identification, the store, the pipeline and the audited service.

Tolerances (closed-form truth on the reference grid, ``synthetic_study.truth``): organ and
lesion TIA within 2 % (registration residual below a voxel, uint16 quantisation); mass-scaled
S-value doses follow the TIA (the same S-value evaluated at the truth's TIA and mass, 2 %).
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pydicom
import pytest
import yaml
from sqlalchemy import select
from tests.store.storekit import add_account, cli_token, ready_patients, work
from typer.testing import CliRunner

from reluth.auth.roles import Role
from reluth.cli import app
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.db.session import read_session
from reluth.dosimetry import synthetic_study as ss
from reluth.dosimetry.dicom_images import parse_calibrations, read_spect
from reluth.dosimetry.image import Image, resample
from reluth.dosimetry.models import DoseResult
from reluth.dosimetry.outputs import read_rt_dose
from reluth.dosimetry.svalues import organ_self_dose_gy
from reluth.imaging.batch import deidentify_tree
from reluth.imaging.deid import DeidSettings
from reluth.imaging.models import ImagingSeries
from reluth.imaging.profile import RELUTH_OPTIONS
from reluth.imaging.store import ingest
from reluth.imaging.synthetic import SyntheticPatient

runner = CliRunner()
INJECTION = dt.datetime(2024, 12, 30, 9, 15)  # the cycle-2 administration of ready_patients


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("from-store")
    spec = ss.StudySpec(patient=SyntheticPatient(injection=INJECTION))
    written = ss.write_study(root / "export", spec)
    url = f"sqlite:///{root / 'trial.db'}"
    engine = make_engine(url)
    upgrade(engine)
    code = ready_patients(engine, 1)[0]
    add_account(engine, "phys1", Role.MEDICAL_PHYSICIST)
    token = cli_token(engine, "phys1")
    key = DeidSettings(key=b"s" * 32, patient_id=code, options=RELUTH_OPTIONS, cycle=2)
    report = deidentify_tree(root / "export", root / "deid", key)
    assert report.skipped == 0
    with work(engine, "phys1") as ctx:
        ingested = ingest(ctx, root / "deid", root / "store")
    engine.dispose()
    assert not ingested.refused
    (root / "cal.yaml").write_text(yaml.safe_dump(ss.calibration_doc(spec)))
    common = ["--patient", code, "--cycle", "2", "--store", str(root / "store"), "--db", url,
              "--calibration", str(root / "cal.yaml")]  # fmt: skip
    env = {"RELUTH_TOKEN": token}
    out = root / "out"
    ran = runner.invoke(
        app, ["dosimetry", "from-store", *common, "--out", str(out), "--json"], env=env
    )
    assert ran.exit_code == 0, ran.output
    return {"root": root, "url": url, "code": code, "common": common, "out": out, "env": env,
            "doc": json.loads(ran.output), "written": written}  # fmt: skip


def test_tia_and_doses_against_closed_form_truth(study: dict) -> None:  # type: ignore[type-arg]
    doc, truth = study["doc"], study["written"].truth["vois"]
    names = {"kidney_left", "kidney_right", "liver", "spleen", "lesion_1", "lesion_2", "lesion_3"}
    assert names <= set(doc["vois"])
    assert doc["inputs"]["vois"]["mapping"]["Rein gauche"] == "kidney_left"
    for name in names:
        v, t = doc["vois"][name], truth[name]
        assert v["volume_ml"] == pytest.approx(t["volume_ml"], rel=0.01), name
        assert v["tia"]["tia_mbq_h"] == pytest.approx(t["tia_mbq_h"], rel=0.02), name
        assert v["tia"]["effective_half_life_h"] == pytest.approx(
            t["effective_half_life_h"], rel=0.02
        ), name
    for name, organ in (("kidney_left", "kidneys"), ("liver", "liver"), ("spleen", "spleen")):
        v, t = doc["vois"][name], truth[name]
        expected = organ_self_dose_gy(t["tia_mbq_h"], organ, "male", v["mass_g"])
        assert v["organ_dose"]["absorbed_dose_gy"] == pytest.approx(expected, rel=0.02), name


def test_each_time_point_converted_once_and_registered(study: dict) -> None:  # type: ignore[type-arg]
    doc = study["doc"]
    tps = doc["inputs"]["time_points"]
    assert [round(tp["hours_after_injection"], 3) for tp in tps] == [4.0, 24.0, 96.0, 168.0]
    conv = [tp["conversion"] for tp in tps]
    assert [c["source_units"] for c in conv] == ["CNTS", "BQML", "BQML", "CNTS"]
    assert conv[0]["calibration"].startswith("11.6 cps/MBq")  # the newer calibration
    assert conv[1]["decay_correction"] == "ADMIN"
    assert conv[1]["decay_factor"] == pytest.approx(math.exp(-math.log(2) * 24 / 159.528), 1e-6)
    assert conv[1]["value_mapping"].startswith("real world value mapping")
    assert conv[2]["decay_factor"] == 1.0
    shifted = tps[2]["registration"]
    np.testing.assert_allclose(shifted["translation_mm"], [8.84, -4.42, 4.42], atol=1.0)
    assert tps[0]["registration"] is None  # the reference (the RTSTRUCT's frame)
    assert max(abs(x) for x in tps[1]["registration"]["translation_mm"]) < 0.5


def test_outputs_overlay_on_the_spect(study: dict) -> None:  # type: ignore[type-arg]
    out, doc = study["out"], study["doc"]
    rtdose = pydicom.dcmread(out / "dose_kernel_gy_rtdose.dcm")
    spect_files = [p for p in (study["root"] / "deid").rglob("*") if p.is_file()]
    nm = next(
        d for d in (pydicom.dcmread(p) for p in spect_files)
        if d.Modality == "NM" and d.SeriesInstanceUID == doc["inputs"]["time_points"][0]["series_uid"]
    )  # fmt: skip
    assert rtdose.FrameOfReferenceUID == nm.FrameOfReferenceUID
    assert rtdose.StudyInstanceUID == nm.StudyInstanceUID and rtdose.PatientID == study["code"]
    dose = read_rt_dose(rtdose)
    spect = read_spect(nm, parse_calibrations(ss.calibration_doc(study["written"].spec)))
    assert dose.grid.same_as(spect.image.grid)
    import nibabel as nib

    nifti = np.asarray(nib.load(str(out / "dose_kernel_gy.nii.gz")).dataobj).transpose(2, 1, 0)
    np.testing.assert_allclose(dose.array, nifti, rtol=1e-6, atol=float(nifti.max()) * 1e-8)
    html = (out / "summary.html").read_text()
    assert "registration_2.png" in html and "Rein gauche" in html and "kidney_left" in html
    assert (out / "registration_2.png").stat().st_size > 1000
    assert "report_pdf" in doc["files"] or any("report.pdf" in w for w in doc["warnings"])


def test_results_stored_through_the_audited_service(study: dict) -> None:  # type: ignore[type-arg]
    engine = make_engine(study["url"])
    with read_session(engine) as s:
        rows = list(s.scalars(select(DoseResult).where(DoseResult.cycle == 2)))
        rtstruct = s.scalars(
            select(ImagingSeries).where(ImagingSeries.modality == "RTSTRUCT")
        ).one()
    engine.dispose()
    assert rtstruct.qc_status == "PASS", rtstruct.qc_reasons  # VOIs in the SPECT's frame
    regions = {r.region for r in rows}
    assert {"kidney_left", "kidney_right", "lesion_3"} <= regions
    again = runner.invoke(app, ["dosimetry", "from-store", *study["common"],
                                "--out", str(study["root"] / "out2")], env=study["env"])  # fmt: skip
    assert again.exit_code == 6 and "replace" in again.output


def test_only_the_physicist_reads_the_store(study: dict) -> None:  # type: ignore[type-arg]
    """The store is the physicists' (its cycles 3-4 reveal the arm): a research nurse is
    refused by the policy before anything is read or written, and without a login the command
    asks for one."""
    engine = make_engine(study["url"])
    nurse = cli_token(engine, "nurse1")
    engine.dispose()
    out = study["root"] / "nurse-out"
    res = runner.invoke(app, ["dosimetry", "from-store", *study["common"], "--no-store",
                              "--out", str(out)], env={"RELUTH_TOKEN": nurse})  # fmt: skip
    assert res.exit_code == 4 and "may not read imaging" in res.output, res.output
    assert not out.exists()
    res = runner.invoke(app, ["dosimetry", "from-store", *study["common"], "--no-store",
                              "--out", str(out)], env={"RELUTH_TOKEN": ""})  # fmt: skip
    assert res.exit_code != 0 and "login" in res.output and not out.exists(), res.output


def test_unknown_cycle_and_missing_calibration_are_named(study: dict) -> None:  # type: ignore[type-arg]
    common = [c for c in study["common"]]
    cyc = common.index("--cycle")
    common[cyc + 1] = "1"
    res = runner.invoke(app, ["dosimetry", "from-store", *common, "--no-store"], env=study["env"])
    assert res.exit_code == 2 and "no catalogued series" in res.output
    no_cal = study["common"][: study["common"].index("--calibration")]
    res = runner.invoke(app, ["dosimetry", "from-store", *no_cal, "--no-store"], env=study["env"])
    assert res.exit_code == 2 and "calibration" in res.output and "Traceback" not in res.output


def test_without_registration_the_shifted_time_point_is_refused(study: dict) -> None:  # type: ignore[type-arg]
    res = runner.invoke(app, ["dosimetry", "from-store", *study["common"], "--no-store",
                              "--registration", "none", "--out", str(study["root"] / "o3")],
                        env=study["env"])  # fmt: skip
    assert res.exit_code == 2 and "another frame of reference" in res.output


def test_resampling_is_simpleitk_and_exact_on_integer_shifts() -> None:
    spec = ss.StudySpec()
    g = ss.spect_grid(spec, spec.time_points[0])
    c = ss.concentration(g, 24.0, (8.84, -4.42, 4.42))
    import SimpleITK as sitk

    back = resample(
        Image(c.astype(np.float32), g, "Bq/mL"),
        g,
        sitk.TranslationTransform(3, (8.84, -4.42, 4.42)),
    )
    ref = ss.concentration(g, 24.0, (0.0, 0.0, 0.0))
    inner = np.zeros(g.shape, bool)
    inner[2:-2, 2:-2, 2:-2] = True
    np.testing.assert_allclose(back.array[inner], ref[inner], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_batch_over_the_patients_of_a_cycle(study: dict) -> None:  # type: ignore[type-arg]
    """`dosimetry batch STORE --from-store-cycle 2`: every patient with SPECTs of the cycle;
    the one here was stored already, so the batch computes it and reports the refusal."""
    root = study["root"]
    res = runner.invoke(app, ["dosimetry", "batch", str(root / "store"), "--out", str(root / "b"),
                              "--from-store-cycle", "2", "--workers", "1", "--db", study["url"],
                              "--calibration", str(root / "cal.yaml"), "--json"],
                        env=study["env"])  # fmt: skip
    assert res.exit_code == 2, res.output
    doc = json.loads(res.output[res.output.index("{") :])
    assert doc["n_cases"] == 1 and "already has" in doc["results"][0]["error"]
    assert (root / "b" / f"{study['code']}-C2" / "results.json").exists()
