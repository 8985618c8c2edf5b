"""Case directory → results, commands end to end, bad input naming the case and field, batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reluth.cli import app
from reluth.dosimetry import dose_effect
from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.marrow import marrow_dose
from reluth.dosimetry.phantom import small_spec, write_case
from reluth.dosimetry.pipeline import compute_case
from reluth.dosimetry.runner import run_case_dir
from reluth.errors import ValidationError

runner = CliRunner()


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_case(tmp_path_factory.mktemp("dosi") / "PHANTOM-001", small_spec(16))


@pytest.fixture(scope="module")
def result(case_dir: Path) -> dict:  # type: ignore[type-arg]
    return compute_case(load_case(case_dir)).to_dict()


def test_phantom_case_against_truth(case_dir: Path, result: dict) -> None:  # type: ignore[type-arg]
    truth = json.loads((case_dir / "truth.json").read_text())
    for name, t in truth["vois"].items():
        v = result["vois"][name]
        assert v["tia"]["tia_mbq_h"] == pytest.approx(t["tia_mbq_h"], rel=0.005), name
        assert v["volume_ml"] == pytest.approx(t["volume_ml"])
        if name != "tumour1":  # voxel-wise mono fit does not match an uptake curve
            assert v["voxel"]["local"]["mean_gy"] == pytest.approx(
                t["local_deposition_dose_gy"], rel=0.005
            )
            assert v["voxel"]["tia_mbq_h"] == pytest.approx(t["tia_mbq_h"], rel=0.005)
    assert result["vois"]["tumour1"]["tia"]["method"] == "fit:bi_uptake"
    assert "sphere_dose" in result["vois"]["tumour2"]
    bed = result["kidney_bed"]
    assert bed["effective_half_life_h"] == pytest.approx(50.0, rel=1e-4)
    assert bed["bed_gy"] > bed["absorbed_dose_gy"]
    marrow = result["red_marrow"]
    expected = marrow_dose(
        truth["blood_tia_bq_h_per_ml"], "female", 1.0, truth["vois"]["body"]["tia_mbq_h"]
    )
    assert marrow["total_gy"] == pytest.approx(expected.total_gy, rel=0.005)
    kid = result["cumulative"]["kidneys"]
    assert kid["cycles"][-1] == "R1" and len(kid["cycles"]) == 5
    assert kid["cumulative_absorbed_dose_gy"] == pytest.approx(
        12.0 + result["vois"]["kidneys"]["organ_dose"]["absorbed_dose_gy"]
    )


def test_npy_case_gives_the_same_results(case_dir: Path, result: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    import nibabel as nib

    npy = tmp_path / "npy-case"
    (npy / "masks").mkdir(parents=True)
    doc = yaml.safe_load((case_dir / "case.yaml").read_text())
    for item in doc["spect"]:
        arr = np.asarray(nib.load(str(case_dir / item["file"])).dataobj)
        item["file"] = item["file"].replace(".nii.gz", ".npy")
        np.save(npy / item["file"], arr)
    for v in doc["vois"].values():
        arr = np.asarray(nib.load(str(case_dir / v["mask"])).dataobj)
        v["mask"] = v["mask"].replace(".nii.gz", ".npy")
        np.save(npy / v["mask"], arr)
    doc["voxel_mm"] = [4.42, 4.42, 4.42]
    doc["methods"]["voxel_dose"] = ["local"]
    (npy / "case.yaml").write_text(yaml.safe_dump(doc))
    again = compute_case(load_case(npy)).to_dict()
    for name, v in result["vois"].items():
        assert again["vois"][name]["tia"]["tia_mbq_h"] == pytest.approx(v["tia"]["tia_mbq_h"])


def test_run_command_end_to_end(case_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["dosimetry", "run", str(case_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("results.json", "summary.html", "tac.png", "dvh.png", "dose_local_gy.nii.gz",
                 "dose_kernel_gy.nii.gz", "tia_bq_h_per_ml.nii.gz"):  # fmt: skip
        assert (out / name).exists(), name
    doc = json.loads((out / "results.json").read_text())  # strict JSON: no NaN
    assert doc["units"]["dose"] == "Gy"
    assert "PHANTOM-001" in (out / "summary.html").read_text()
    import nibabel as nib

    dose = np.asarray(nib.load(str(out / "dose_kernel_gy.nii.gz")).dataobj)
    assert dose.shape == (16, 16, 16) and float(dose.max()) > 0


def _broken_copy(case_dir: Path, dest: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    shutil.copytree(case_dir, dest)
    doc = yaml.safe_load((dest / "case.yaml").read_text())
    edit(doc, dest)
    (dest / "case.yaml").write_text(yaml.safe_dump(doc))
    return dest


def _no_injection(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    del doc["injection_time"]


def _swap_times(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    s = doc["spect"]
    s[1]["acquisition_time"], s[2]["acquisition_time"] = (
        s[2]["acquisition_time"],
        s[1]["acquisition_time"],
    )


def _small_mask(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    np.save(d / "masks" / "small.npy", np.ones((15, 16, 16), dtype=np.uint8))
    doc["vois"]["kidneys"]["mask"] = "masks/small.npy"


def _negative(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    arr = np.full((16, 16, 16), 10.0)
    arr[3, 3, 3] = -5.0
    np.save(d / "neg.npy", arr)
    doc["spect"][1]["file"] = "neg.npy"


def _tri(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    doc["vois"]["kidneys"]["kinetics"] = "tri"


def _gn_steps(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    doc["methods"]["voxel_fit_gauss_newton_steps"] = 9


def _before_injection(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
    doc["spect"][0]["acquisition_time"] = "2026-01-05T08:00:00"


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (_no_injection, "injection_time", "missing"),
        (_swap_times, "spect.acquisition_time", "not increasing"),
        (_small_mask, "vois.kidneys.mask", "does not match the SPECT grid"),
        (_negative, "spect[1].file", "negative activity"),
        (_tri, "vois.kidneys.times_h", "needs at least 5 time points"),
        (_before_injection, "spect[0].acquisition_time", "not after the injection"),
        (_gn_steps, "methods.voxel_fit_gauss_newton_steps", "unknown value 9"),
    ],
)
def test_bad_input_names_case_and_field(  # type: ignore[no-untyped-def]
    case_dir: Path, tmp_path: Path, edit, field: str, words: str
) -> None:
    bad = _broken_copy(case_dir, tmp_path / "bad", edit)
    with pytest.raises(ValidationError) as exc:
        run_case_dir(bad, tmp_path / "out")
    assert exc.value.field == f"case PHANTOM-001: {field}"
    assert words in exc.value.message
    assert not (tmp_path / "out" / "results.json").exists()


def test_run_command_bad_input_is_one_line(case_dir: Path, tmp_path: Path) -> None:
    bad = _broken_copy(case_dir, tmp_path / "bad", _no_injection)
    res = runner.invoke(app, ["dosimetry", "run", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "case PHANTOM-001: injection_time: missing" in res.output
    assert "Traceback" not in res.output


def _batch_dir(case_dir: Path, root: Path) -> Path:
    cases = root / "cases"
    for name in ("A", "C"):
        shutil.copytree(case_dir, cases / name)
        doc = yaml.safe_load((cases / name / "case.yaml").read_text())
        doc["case_id"] = name
        (cases / name / "case.yaml").write_text(yaml.safe_dump(doc))
    b = _broken_copy(case_dir, cases / "B", _no_injection)
    doc = yaml.safe_load((b / "case.yaml").read_text())
    doc["case_id"] = "B"
    (b / "case.yaml").write_text(yaml.safe_dump(doc))
    return cases


def test_batch_goes_on_after_a_bad_case(case_dir: Path, tmp_path: Path) -> None:
    cases = _batch_dir(case_dir, tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["dosimetry", "batch", str(cases), "--out", str(out), "--json"])
    assert res.exit_code == 2
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["n_ok"] == 2 and summary["n_failed"] == 1
    failed = next(r for r in summary["results"] if not r["ok"])
    assert failed["error"] == "case B: injection_time: missing (accepted: see docs/dosimetry.md)"
    assert (out / "A" / "results.json").exists() and (out / "C" / "results.json").exists()


def test_batch_on_a_dask_cluster(case_dir: Path, tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    cases = tmp_path / "cases"
    shutil.copytree(case_dir, cases / "A")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        res = runner.invoke(
            app,
            ["dosimetry", "batch", str(cases), "--out", str(tmp_path / "o"),
             "--scheduler", cluster.scheduler_address],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "A" / "results.json").exists()


def test_phantom_command(tmp_path: Path) -> None:
    res = runner.invoke(app, ["dosimetry", "phantom", str(tmp_path / "p"), "--grid", "16",
                              "--count", "2", "--noise", "0.05"])  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("PHANTOM-001", "PHANTOM-002"):
        assert (tmp_path / "p" / name / "case.yaml").exists()
        assert (tmp_path / "p" / name / "truth.json").exists()
    bad = runner.invoke(app, ["dosimetry", "phantom", str(tmp_path / "q"), "--sex", "x"])
    assert bad.exit_code == 2 and "--sex" in bad.output
    tiny = runner.invoke(app, ["dosimetry", "phantom", str(tmp_path / "q"), "--grid", "8"])
    assert tiny.exit_code == 2 and "a larger grid" in tiny.output


def test_dose_effect_command(tmp_path: Path) -> None:
    csv = tmp_path / "de.csv"
    dose_effect.synthetic(40).to_csv(csv, index=False)
    res = runner.invoke(app, ["dosimetry", "dose-effect", str(csv), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    for name in ("dose_effect.md", "dose_effect.json", "response_vs_tumour_dose.png",
                 "egfr_slope_vs_kidney_bed.png"):  # fmt: skip
        assert (tmp_path / "o" / name).exists()
    assert "odds ratio" in (tmp_path / "o" / "dose_effect.md").read_text()
    df = dose_effect.synthetic(10).drop(columns=["kidney_bed_gy"])
    df.to_csv(csv, index=False)
    bad = runner.invoke(app, ["dosimetry", "dose-effect", str(csv), "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "kidney_bed_gy" in bad.output


def test_logistic_recovers_generating_slope() -> None:
    res = dose_effect.analyse(dose_effect.synthetic(3000, seed=1))
    assert res.response is not None
    lo, hi = res.response.ci95_per_10_gy
    assert lo < np.exp(0.6) < hi  # generated with 0.06 per Gy
    assert res.kidney is not None and res.kidney.slope is not None
    assert res.kidney.slope == pytest.approx(-0.12, abs=0.03)


def test_dose_effect_not_estimable_is_said() -> None:
    df = dose_effect.synthetic(10)
    df["disease_control_m6"] = 1
    res = dose_effect.analyse(df)
    assert res.response is None
    assert "not estimable" in dose_effect.report_section(res)
    df["disease_control_m6"] = 2
    with pytest.raises(ValidationError, match="disease_control_m6"):
        dose_effect.analyse(df)


def test_organ_scaled_and_trapezoid_voxel_methods(case_dir: Path) -> None:
    from dataclasses import replace

    case = load_case(case_dir)
    scaled = compute_case(replace(case, methods=replace(case.methods, voxel_tia="organ_scaled")))
    for name, v in scaled.to_dict()["vois"].items():
        if v["kind"] != "remainder":  # VOI TIA redistributed over its voxels
            assert v["voxel"]["tia_mbq_h"] == pytest.approx(v["tia"]["tia_mbq_h"], rel=1e-5), name
    trap = compute_case(replace(case, methods=replace(case.methods, voxel_tia="trapezoid")))
    kid = trap.to_dict()["vois"]["kidneys"]
    assert kid["voxel"]["tia_mbq_h"] > kid["tia"]["tia_mbq_h"]  # physical tail overestimates


def test_shipped_example_case_matches_its_truth() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "dosimetry" / "phantom-case"
    truth = json.loads((example / "truth.json").read_text())
    res = compute_case(load_case(example)).to_dict()
    for name in ("kidneys", "liver", "tumour1"):
        assert res["vois"][name]["tia"]["tia_mbq_h"] == pytest.approx(
            truth["vois"][name]["tia_mbq_h"], rel=0.005
        )


def test_single_time_point_case(case_dir: Path, tmp_path: Path) -> None:
    def one_image(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
        doc["spect"] = [doc["spect"][2]]  # 96 h only
        doc["methods"]["kinetics"] = "hanscheid"
        doc["vois"]["tumour1"].pop("kinetics")
        del doc["marrow"]

    stp = _broken_copy(case_dir, tmp_path / "stp", one_image)
    with pytest.raises(ValidationError, match=r"methods\.voxel_tia"):
        run_case_dir(stp, tmp_path / "o")
    doc = yaml.safe_load((stp / "case.yaml").read_text())
    doc["methods"]["voxel_tia"] = "hanscheid"
    (stp / "case.yaml").write_text(yaml.safe_dump(doc))
    res = compute_case(load_case(stp)).to_dict()
    truth = json.loads((case_dir / "truth.json").read_text())
    x = 96.0 / 50.0  # kidneys: T_eff 50 h
    expected = truth["vois"]["kidneys"]["tia_mbq_h"] * 2 * x * 2 ** (-x)
    kid = res["vois"]["kidneys"]
    assert kid["tia"]["method"] == "hanscheid"
    assert kid["tia"]["tia_mbq_h"] == pytest.approx(expected, rel=1e-6)
    assert kid["voxel"]["tia_mbq_h"] == pytest.approx(expected, rel=1e-5)
    assert res["kidney_bed"] is None  # no effective half-life from one time point
    assert res["cumulative"]["kidneys"]["cumulative_bed_gy"] is None
    assert any("cumulative BED not computed" in w for w in res["warnings"])


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


junk = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mangled_case_yaml_gives_validation_errors_only(
    case_dir: Path, tmp_path: Path, data
) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load((case_dir / "case.yaml").read_text())
    paths = _paths(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = data.draw(junk)
        paths = _paths(doc)
    import tempfile

    target = Path(tempfile.mkdtemp(dir=tmp_path))
    for name in ("masks", *[p.name for p in case_dir.glob("*.nii.gz")]):
        (target / name).symlink_to(case_dir / name)
    (target / "case.yaml").write_text(yaml.safe_dump(doc))
    try:
        compute_case(load_case(target))
    except ValidationError as exc:
        assert exc.field and "Traceback" not in exc.message


def test_ct_gives_density_for_masses_and_local_dose(
    case_dir: Path, result: dict, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    def with_ct(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
        np.save(d / "ct.npy", np.full((16, 16, 16), 50.0))  # 50 HU → 1.05 g/mL
        doc["ct"] = {"file": "ct.npy"}

    ct_case = _broken_copy(case_dir, tmp_path / "ct", with_ct)
    res = compute_case(load_case(ct_case)).to_dict()
    kid, ref = res["vois"]["kidneys"], result["vois"]["kidneys"]
    assert kid["mass_g"] == pytest.approx(1.05 * ref["volume_ml"], rel=1e-6)
    assert kid["voxel"]["local"]["mean_gy"] == pytest.approx(
        ref["voxel"]["local"]["mean_gy"] / 1.05, rel=1e-5
    )
    # heavier kidneys: lower S-value dose
    assert kid["organ_dose"]["absorbed_dose_gy"] < ref["organ_dose"]["absorbed_dose_gy"]

    def wrong_ct(doc: dict, d: Path) -> None:  # type: ignore[type-arg]
        np.save(d / "ct.npy", np.zeros((16, 16, 8)))
        doc["ct"] = {"file": "ct.npy"}

    bad = _broken_copy(case_dir, tmp_path / "ct-bad", wrong_ct)
    with pytest.raises(ValidationError, match="does not match the SPECT grid") as exc:
        run_case_dir(bad, tmp_path / "o")
    assert exc.value.field == "case PHANTOM-001: ct.file"


def test_dose_records_for_storage(case_dir: Path) -> None:
    from reluth.dosimetry.pipeline import dose_records

    res = compute_case(load_case(case_dir))
    recs = dose_records(res)
    assert {r.cycle_label for r in recs} == {"R1"} and {r.case_id for r in recs} == {"PHANTOM-001"}
    by_key = {(r.region, r.quantity, r.method): r for r in recs}
    kid = res.summary["vois"]["kidneys"]["organ_dose"]["absorbed_dose_gy"]
    assert by_key[("kidneys", "absorbed_dose", "S-value")].value == kid
    assert by_key[("kidneys", "bed", "BED (α/β, T_rep)")].unit == "Gy"
    assert ("tumour2", "absorbed_dose", "sphere model") in by_key
    assert ("red_marrow", "absorbed_dose", "blood-based") in by_key
    assert all(r.unit in ("MBq·h", "h", "Gy") for r in recs)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scale=st.floats(0.1, 10.0))
def test_doses_scale_linearly_with_activity(case_dir: Path, result: dict, scale: float) -> None:  # type: ignore[type-arg]
    from dataclasses import replace

    case = load_case(case_dir)
    scaled = compute_case(
        replace(case, images_bq_per_ml=case.images_bq_per_ml * np.float32(scale), marrow=None)
    ).to_dict()
    for name, v in result["vois"].items():
        s = scaled["vois"][name]
        assert s["tia"]["tia_mbq_h"] == pytest.approx(scale * v["tia"]["tia_mbq_h"], rel=1e-5)
        for key in ("organ_dose", "sphere_dose"):
            if key in v:
                assert s[key]["absorbed_dose_gy"] == pytest.approx(
                    scale * v[key]["absorbed_dose_gy"], rel=1e-5
                )
        for vm in ("local", "kernel"):
            assert s["voxel"][vm]["mean_gy"] == pytest.approx(
                scale * v["voxel"][vm]["mean_gy"], rel=1e-4
            )
    bed, bed_scaled = result["kidney_bed"], scaled["kidney_bed"]
    assert bed_scaled["absorbed_dose_gy"] == pytest.approx(
        scale * bed["absorbed_dose_gy"], rel=1e-5
    )
    # BED is quadratic in dose: more than proportional above scale 1, less below
    if scale > 1.01:
        assert bed_scaled["bed_gy"] > scale * bed["bed_gy"]
    elif scale < 0.99:
        assert bed_scaled["bed_gy"] < scale * bed["bed_gy"]


def test_the_report_is_written_in_the_readers_language(result: dict) -> None:  # type: ignore[type-arg]
    """Issue 18: the per-patient dosimetry report in French writes numbers with a decimal comma
    and grouped thousands, the injection day as dd/mm/yyyy, and the sex, VOI kinds and limit
    quantities in French; in English numbers keep the point."""
    from reluth.dosimetry.outputs import render_html
    from reluth.i18n import format_number, use_locale

    kidneys = result["vois"]["kidneys"]["organ_dose"]["absorbed_dose_gy"]
    with use_locale("fr"):
        french = render_html(result)
        dose = format_number(float(f"{kidneys:.3g}"))
    assert "," in dose and f"<td>{dose}</td>" in french
    assert "7\u202f400" in french  # MBq administered, grouped as French writes it
    assert "05/01/2026 09:00" in french and "2026-01-05T09:00:00" not in french
    assert "femme" in french and "<td>organe</td>" in french and "<td>tumeur</td>" in french
    assert "dose absorbée" in french and "absorbed_dose_gy" not in french
    with use_locale("en"):
        english = render_html(result)
    assert f"<td>{kidneys:.3g}</td>" in english and "<td>organ</td>" in english
