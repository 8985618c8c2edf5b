"""Organ naming: left/right kidneys, French names, cumulation and limits whatever the VOI names."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from reluth.dosimetry.bed import bed_gy
from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.cumulative import CycleDoses, OrganCycleDose, cumulate
from reluth.dosimetry.organs import default_organ_names, normalise, parse_organ_names
from reluth.dosimetry.phantom import small_spec, write_case
from reluth.dosimetry.pipeline import compute_case, dose_records
from reluth.errors import ValidationError


def _previous(n: int, dose: float = 5.0) -> list[CycleDoses]:
    return [CycleDoses(f"C{i + 1}", {"kidneys": OrganCycleDose(dose, 50.0)}) for i in range(n)]


def test_names_are_normalised_and_mapped() -> None:
    names = default_organ_names()
    assert normalise("  Rein_G ") == "rein g" == normalise("REIN-G")
    for alias, organ in [
        ("kidney_left", "kidney_left"),
        ("Kidney_L", "kidney_left"),
        ("Rein G", "kidney_left"),
        ("rein droit", "kidney_right"),
        ("Kidney_R", "kidney_right"),
        ("Reins", "kidneys"),
        ("Foie", "liver"),
        ("Rate", "spleen"),
        ("tumour1", None),
    ]:
        assert names.organ_of(alias) == organ, alias
    assert names.svalue_organ("Rein D") == "kidneys"
    assert names.svalue_organ("liver") == "liver"
    assert names.family("kidneys") == ("kidneys", "kidney_left", "kidney_right")
    assert names.groups_present(["Rein G", "Rein D", "liver"]) == {"kidneys": ("Rein G", "Rein D")}
    assert names.groups_present(["Rein G", "Rein D", "reins"]) == {}
    with pytest.raises(ValidationError, match="both name the organ kidney_left"):
        names.groups_present(["Rein G", "kidney_left"])
    extra = names.with_aliases({"NIER LI": "kidney_left"})
    assert extra.organ_of("Nier_li") == "kidney_left"
    with pytest.raises(ValidationError, match="each alias names one organ"):
        parse_organ_names({"organs": {"liver": ["x"], "spleen": ["x"]}})


def test_left_right_kidneys_reach_the_23_gy_limit() -> None:
    """The issue's case: 4 × 5 Gy, then a cycle of 3.02 Gy stored as kidney_left/kidney_right."""
    current = CycleDoses(
        "C5",
        {
            "kidney_left": OrganCycleDose(3.02, 50.0, mass_g=150.0),
            "kidney_right": OrganCycleDose(3.02, 50.0, mass_g=160.0),
        },
    )
    res = cumulate([*_previous(4), current])
    kid = res.organs["kidneys"]
    assert kid.cycles == ["C1", "C2", "C3", "C4", "C5"]
    assert kid.cumulative_absorbed_dose_gy == pytest.approx(23.02)
    absorbed = [w for w in res.warnings if w.quantity == "absorbed_dose_gy"]
    assert [w.organ for w in absorbed] == ["kidneys"]
    # BED for both kidneys this cycle: the mass-weighted mean of the two kidneys' BED
    assert kid.bed_gy is not None
    assert kid.bed_gy[-1] == pytest.approx(bed_gy(3.02, 50.0))
    assert res.organs["kidney_left"].bed_gy == [pytest.approx(bed_gy(3.02, 50.0))]
    # below the limit on the other side of the boundary
    low = CycleDoses(
        "C5", {"kidney_left": OrganCycleDose(2.99), "kidney_right": OrganCycleDose(2.99)}
    )
    res_low = cumulate([*_previous(4), low])
    assert res_low.organs["kidneys"].cumulative_absorbed_dose_gy == pytest.approx(22.99)
    assert not [w for w in res_low.warnings if w.quantity == "absorbed_dose_gy"]
    assert any("equal weights" in n for n in res_low.notes)


def test_combined_kidney_dose_is_energy_over_mass() -> None:
    cyc = CycleDoses(
        "C1",
        {
            "Rein G": OrganCycleDose(4.0, 40.0, mass_g=100.0),
            "Rein D": OrganCycleDose(2.0, 60.0, mass_g=300.0),
        },
    )
    kid = cumulate([cyc]).organs["kidneys"]
    assert kid.absorbed_dose_gy == [pytest.approx((4.0 * 100 + 2.0 * 300) / 400)]
    expected_bed = (bed_gy(4.0, 40.0) * 100 + bed_gy(2.0, 60.0) * 300) / 400
    assert kid.bed_gy == [pytest.approx(expected_bed)]


def test_french_names_cumulate_with_english_names() -> None:
    cycles = [
        CycleDoses("C1", {"Reins": OrganCycleDose(6.0, 50.0), "Foie": OrganCycleDose(2.0)}),
        CycleDoses("C2", {"kidneys": OrganCycleDose(6.0, 50.0), "liver": OrganCycleDose(2.0)}),
    ]
    res = cumulate(cycles)
    assert res.organs["kidneys"].cumulative_absorbed_dose_gy == pytest.approx(12.0)
    assert res.organs["liver"].cumulative_absorbed_dose_gy == pytest.approx(4.0)
    assert "Reins" not in res.organs
    with pytest.raises(ValidationError, match="both name the organ kidneys"):
        cumulate([CycleDoses("C1", {"Reins": OrganCycleDose(1.0), "kidneys": OrganCycleDose(1.0)})])


def test_a_single_kidney_reaching_the_limit_is_warned() -> None:
    cycles = [
        CycleDoses(
            f"C{i}",
            {
                "kidney_left": OrganCycleDose(6.0, 50.0, mass_g=150.0),
                "kidney_right": OrganCycleDose(3.0, 50.0, mass_g=150.0),
            },
        )
        for i in range(4)
    ]
    res = cumulate(cycles)
    assert res.organs["kidneys"].cumulative_absorbed_dose_gy == pytest.approx(18.0)
    absorbed = [w.organ for w in res.warnings if w.quantity == "absorbed_dose_gy"]
    assert absorbed == ["kidney_left"]


def _split_kidney_case(tmp: Path, names: tuple[str, str]) -> Path:
    case = write_case(tmp / "split", small_spec(16))
    doc = yaml.safe_load((case / "case.yaml").read_text())
    whole = nib.load(str(case / "masks" / "kidneys.nii.gz"))
    kid = np.asarray(whole.dataobj) > 0
    affine = whole.affine  # the halves on the whole mask's grid (placed by affine, not shape)
    half = np.zeros_like(kid)
    half[:, : kid.shape[1] // 2, :] = True
    for name, part in zip(names, (kid & half, kid & ~half), strict=True):
        path = f"masks/{name.replace(' ', '_')}.nii.gz"
        nib.save(nib.Nifti1Image(part.astype(np.uint8), affine), case / path)
        doc["vois"][name] = {"mask": path, "kind": "organ"}
    del doc["vois"]["kidneys"]
    for c in doc["previous_cycles"]:
        c["doses"] = {"kidneys": {"absorbed_dose_gy": 5.0, "effective_half_life_h": 50.0}}
    (case / "case.yaml").write_text(yaml.safe_dump(doc))
    return case


@pytest.mark.parametrize("names", [("kidney_left", "kidney_right"), ("Rein G", "Rein D")])
def test_pipeline_with_left_and_right_kidney_vois(tmp_path: Path, names: tuple[str, str]) -> None:
    whole = compute_case(load_case(write_case(tmp_path / "whole", small_spec(16)))).to_dict()
    case = _split_kidney_case(tmp_path, names)
    res = compute_case(load_case(case)).to_dict()
    left, right = (res["vois"][n] for n in names)
    assert left["organ_dose"]["svalue_organ"] == "kidneys"
    both = res["vois"]["kidneys"]
    assert both["kind"] == "organ" and both["combined_from"] == list(names)
    assert both["tia"]["tia_mbq_h"] == pytest.approx(
        left["tia"]["tia_mbq_h"] + right["tia"]["tia_mbq_h"], rel=1e-3
    )
    d_whole = whole["vois"]["kidneys"]["organ_dose"]["absorbed_dose_gy"]
    assert both["organ_dose"]["absorbed_dose_gy"] == pytest.approx(d_whole, rel=1e-3)
    # BED per kidney and for both
    assert set(res["bed"]) == {*names, "kidneys"}
    assert res["kidney_bed"]["bed_gy"] == pytest.approx(res["bed"]["kidneys"]["bed_gy"])
    # cumulation uses the current cycle: 4 × 5 Gy + this cycle
    cum = res["cumulative"]["kidneys"]
    assert len(cum["cycles"]) == 5
    assert cum["cumulative_absorbed_dose_gy"] == pytest.approx(20.0 + d_whole, rel=1e-3)
    assert any("kidneys absorbed dose" in w for w in res["warnings"])  # 20 + ~3.7 ≥ 23 Gy
    regions = {(r.region, r.quantity) for r in dose_records(compute_case(load_case(case)))}
    assert {(n, "bed") for n in (*names, "kidneys")} <= regions


def test_case_file_aliases(tmp_path: Path) -> None:
    case = _split_kidney_case(tmp_path, ("NL", "NR"))
    doc = yaml.safe_load((case / "case.yaml").read_text())
    doc["organ_names"] = {"NL": "kidney_left", "NR": "kidney_right"}
    (case / "case.yaml").write_text(yaml.safe_dump(doc))
    res = compute_case(load_case(case)).to_dict()
    assert res["vois"]["kidneys"]["combined_from"] == ["NL", "NR"]
    shutil.rmtree(case)
