"""Issue 18: the dosimetry engine's warnings and methods are message keys with typed values.
``results.json`` keeps its English ``warnings`` (and method codes) for machines, beside their
keys (``warning_messages``); the report written in French shows none of the English warning
or method sentences, the English report every one of them."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from reluth.dosimetry import notes
from reluth.dosimetry.case_dir import load_case
from reluth.dosimetry.cumulative import CycleDoses, OrganCycleDose, cumulate, default_limits
from reluth.dosimetry.kinetics import STP_WINDOW_H, hanscheid_ratio, stp_warning
from reluth.dosimetry.outputs import json_safe, render_html
from reluth.dosimetry.phantom import small_spec, write_case
from reluth.dosimetry.pipeline import compute_case
from reluth.i18n import use_locale

PO = Path(__file__).resolve().parents[2] / "src/reluth/locale/fr/LC_MESSAGES/messages.po"
SOURCES = (
    "dosimetry/notes.py",
    "dosimetry/kinetics.py",
    "dosimetry/pipeline.py",
    "dosimetry/cumulative.py",
    "dosimetry/image.py",
    "dosimetry/vois.py",
    "dosimetry/dicom_case.py",
    "dosimetry/dicom_images.py",
    "dosimetry/registration.py",
    "templates/dosimetry_report.html",
)


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    """A phantom case made to warn: the liver and the voxel TIA by Hänscheid at 168 h (outside
    the window), the marrow's remainder from the field of view, previous cycles reaching the
    kidney limit, one of them without an effective half-life (no cumulative BED)."""
    case = write_case(tmp_path_factory.mktemp("dosi-lang") / "PHANTOM-FR", small_spec(16))
    spec = yaml.safe_load((case / "case.yaml").read_text())
    spec["vois"]["liver"]["kinetics"] = "hanscheid"
    spec["methods"]["voxel_tia"] = "hanscheid"
    spec["methods"]["single_time_point"] = {"index": 3}
    spec["previous_cycles"][0]["doses"]["kidneys"] = {"absorbed_dose_gy": 22.0}
    (case / "case.yaml").write_text(yaml.safe_dump(spec))
    result = compute_case(load_case(case)).to_dict()
    return json.loads(json.dumps(json_safe(result)))  # as results.json stores it


def _text(page: str) -> str:
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", body)))


def _english_pieces() -> dict[str, str]:
    """Each literal piece (two words or more, between placeholders) of the catalogue's English
    messages made by the dosimetry engine and its report, when the French differs."""
    with PO.open("rb") as handle:
        catalog = read_po(handle)
    out = {}
    for m in catalog:
        if not (m.id and isinstance(m.id, str) and m.string and m.string != m.id):
            continue
        if not any(f.endswith(s) for f, _line in m.locations for s in SOURCES):
            continue
        for piece in re.split(r"%\(\w+\)s|\{\w*\}", m.id):
            piece = piece.strip(" .,:;()—-[]")
            if len(piece.split()) >= 2 and piece not in str(m.string):
                out[piece] = m.id
    return out


def test_results_keep_english_warnings_beside_their_keys(doc: dict) -> None:  # type: ignore[type-arg]
    warnings, stored = doc["warnings"], doc["warning_messages"]
    assert len(warnings) == len(stored) and all(isinstance(w, str) for w in warnings)
    assert any("vois.liver: hanscheid single-time-point estimate at 168.0 h" in w for w in warnings)
    assert any(w.startswith("methods.voxel_tia: hanscheid (voxel)") for w in warnings)
    assert any("red marrow: remainder of body from the SPECT field of view" in w for w in warnings)
    assert any("cumulative kidneys absorbed dose" in w and "[source: " in w for w in warnings)
    assert any("kidneys: cumulative BED not computed" in w for w in warnings)
    for text, message in zip(warnings, stored, strict=True):
        assert message is not None, text
        with use_locale("en"):
            assert notes.shown(text, message) == text  # the keys write the same English
    keys = {m["key"] for m in stored}
    assert {
        "dosimetry.at",
        "dosimetry.limit_with_source",
        "dosimetry.cumulative_bed_missing",
    } <= keys
    assert doc["vois"]["liver"]["tia"]["method"] == "hanscheid"  # method codes unchanged
    assert doc["vois"]["tumour1"]["tia"]["method"] == "fit:bi_uptake"


def test_the_french_report_has_no_english_warning_or_method(doc: dict) -> None:  # type: ignore[type-arg]
    with use_locale("fr"):
        french = _text(render_html(doc))
        shown = notes.shown_all(doc)
    for english, in_french in zip(doc["warnings"], shown, strict=True):
        assert english not in french
        assert in_french != english and in_french in french
    cited = french
    for limit in default_limits():  # the limits' sources are cited as limits.yaml writes them
        cited = cited.replace(limit.source, "")
    left = [p for p in _english_pieces() if p in cited]
    assert left == [], left
    for method in ("fit:bi_uptake", "hanscheid", "local, kernel", "single-time-point"):
        assert method not in french
    assert "méthode à un seul point (Hänscheid)" in french
    assert "ajustement bi-exponentiel avec phase de fixation" in french
    assert "noyau de dépôt de dose" in french
    assert "moelle osseuse rouge : reste du corps limité au champ de vue de la TEMP" in french
    assert "reins : dose absorbée cumulée de" in french and "[source : " in french
    assert "168,0 h" in french  # the time point as French writes it


def test_the_english_report_is_still_english(doc: dict) -> None:  # type: ignore[type-arg]
    with use_locale("en"):
        english = _text(render_html(doc))
    for warning in doc["warnings"]:
        assert warning in english
    assert "bi-exponential fit with uptake phase" in english
    assert "single-time-point method (Hänscheid)" in english
    assert "dose deposition kernel" in english


def test_a_report_written_before_the_keys_shows_its_english() -> None:
    old = {"warnings": ["something the engine said in 2025"]}
    with use_locale("fr"):
        assert notes.shown_all(old) == ["something the engine said in 2025"]
    assert notes.method_label("a method of its own") == "a method of its own"


def test_cumulative_notes_and_limit_warnings_read_in_french() -> None:
    res = cumulate(
        [
            CycleDoses(
                "C1",
                {"kidney_left": OrganCycleDose(30.0), "kidney_right": OrganCycleDose(20.0, 50.0)},
            ),
        ]
    )
    with use_locale("fr"):
        warnings = [notes.shown(w.message) for w in res.warnings]
        texts = [notes.shown(n) for n in res.notes]
    assert "reins : dose absorbée cumulée de 25,00 Gy, atteint la limite de 23 Gy" in warnings
    assert any(
        t.startswith("reins (C1) : déduit de rein gauche, rein droit à poids égaux") for t in texts
    )
    assert any(t.startswith("rein gauche : DBE cumulée non calculée") for t in texts)
    assert res.warnings[0].message.startswith("cumulative kidneys absorbed dose 25.00 Gy")


@given(
    st.sampled_from(["hanscheid", "madsen", "hanscheid (voxel)"]),
    st.floats(0.0, 400.0).filter(lambda t: not STP_WINDOW_H[0] <= t <= STP_WINDOW_H[1]),
)
def test_the_single_time_point_warning_keeps_its_english(method: str, time_h: float) -> None:
    """The English of the keyed warning is the text the engine wrote before (results.json)."""
    lo, hi = STP_WINDOW_H
    before = (
        f"{method} single-time-point estimate at {time_h:.1f} h, outside its validity window "
        f"{lo:g}–{hi:g} h (Hänscheid 2018): error can exceed 10 % "
        f"(Hänscheid at 168 h for a 50 h effective half-life: {100 * (hanscheid_ratio(168 / 50) - 1):+.1f} %)"
    )
    warning = stp_warning(method, time_h)
    assert warning == before
    with use_locale("fr"):
        french = notes.shown(warning)
    assert "estimation à un seul point" in french and "single-time-point" not in french
    assert "méthode à un seul point" in french


@given(st.floats(1e-3, 1e6))
def test_a_quantity_is_written_as_before_in_english(value: float) -> None:
    """Three significant digits as ``:.3g`` wrote them, without an exponent."""
    q = notes.quantity(value, "g")
    assert float(q.value) == float(f"{value:.3g}")
    assert "e" not in str(q.value).lower()
