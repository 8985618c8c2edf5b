"""The screening form laid out from the patient-file model: every example patient entered
through the form gets exactly the eligibility it gets from its JSON file; bad entries are
named by field; the page keeps what was typed and puts each message next to its field."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web_support import Site

from reluth.errors import ReluthError, ValidationError
from reluth.protocol.definition import load_protocol
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import parse_patient
from reluth.web import screening_form as sf

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "patients").glob("*.json"))
AS_OF = dt.date(2025, 3, 12)
ELIGIBLE = json.loads((EXAMPLES[0].parent / "eligible.json").read_text())


def _verdict(data: dict[str, object]) -> list[tuple[str, str, str]]:
    result = check_eligibility(parse_patient(data, as_of=AS_OF), load_protocol(), stage="inclusion")
    return [(c.id, c.result, c.reason) for c in result.criteria] + [("all", result.status, "")]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_gets_the_same_verdict_through_the_form(path: Path) -> None:
    data = json.loads(path.read_text())
    form = sf.to_form(data)
    names = {i.name for i in sf.all_inputs()} | {s.none_option for s in sf.sections()}
    assert set(form) - {"patient_id"} <= names, "a field of the file has no input on the form"
    assert _verdict(sf.to_patient_file(form, data["patient_id"])) == _verdict(data)


def test_decimal_comma_gives_the_same_verdict_as_the_point() -> None:
    """A French site types 11,8 g/dL and 0,95: the same patient file as 11.8 and 0.95."""
    form = sf.to_form(ELIGIBLE)
    decimals = {i.name for i in sf.all_inputs() if i.kind == "decimal"}
    french = {k: v.replace(".", ",") if k in decimals else v for k, v in form.items()}
    assert any("," in v for v in french.values())
    assert _verdict(sf.to_patient_file(french, ELIGIBLE["patient_id"])) == _verdict(ELIGIBLE)
    with pytest.raises(ValidationError) as caught:
        sf.to_patient_file({**french, "labs.hemoglobin.value": "11,8,1"}, "C01-0001")
    assert caught.value.code == "not_a_number" and caught.value.field == "labs.hemoglobin.value"


def test_blank_form_is_incomplete_not_an_error() -> None:
    data = sf.to_patient_file({"assessment_date": "2025-03-03"}, "C01-0001")
    assert data == {"patient_id": "C01-0001", "assessment_date": "2025-03-03"}
    result = check_eligibility(parse_patient(data, as_of=AS_OF), load_protocol(), stage="inclusion")
    assert result.status == "incomplete"


def test_yes_no_fields_accept_only_yes_no_or_blank() -> None:
    with pytest.raises(ValidationError) as err:
        sf.to_patient_file({"consent.signed": "maybe"}, "C01-0001")
    assert err.value.field == "consent.signed" and "yes, no" in err.value.message
    assert sf.to_patient_file({"consent.signed": "no"}, "C01-0001")["consent"] == {"signed": False}


def test_none_marker_gives_an_empty_list_and_conflicts_with_filled_rows() -> None:
    base = {"assessment_date": "2025-03-03"}
    assert "lesions" not in sf.to_patient_file(base, "C01-0001")  # not recorded
    ticked = sf.to_patient_file({**base, "lesions.none": "yes"}, "C01-0001")
    assert ticked["lesions"] == []
    with pytest.raises(ValidationError) as err:
        sf.to_patient_file(
            {**base, "lesions.none": "yes", "lesions.0.id": "T1", "lesions.0.organ": "liver"},
            "C01-0001",
        )
    assert err.value.field == "lesions"


def test_rows_are_kept_in_order_and_blank_rows_skipped() -> None:
    form = {
        "assessment_date": "2025-03-03",
        "lesions.0.id": "T1",
        "lesions.0.organ": "liver",
        "lesions.3.id": "T2",
        "lesions.3.organ": "lung",
    }
    lesions = sf.to_patient_file(form, "C01-0001")["lesions"]
    assert [x["id"] for x in lesions] == ["T1", "T2"]


def test_engine_errors_are_mapped_to_their_inputs() -> None:
    form = {**sf.to_form(ELIGIBLE), "labs.platelets.unit": "", "age": "300"}
    with pytest.raises(ReluthError) as err:
        parse_patient(sf.to_patient_file(form, ELIGIBLE["patient_id"]), as_of=AS_OF)
    assert set(sf.field_errors(err.value)) == {"age", "labs.platelets.unit"}
    # Units are checked once the file is well formed; the message still finds its input.
    form = {**sf.to_form(ELIGIBLE), "labs.hemoglobin.unit": "furlongs"}
    with pytest.raises(ReluthError) as err:
        parse_patient(sf.to_patient_file(form, ELIGIBLE["patient_id"]), as_of=AS_OF)
    where = sf.field_errors(err.value)
    assert list(where) == ["labs.hemoglobin.unit"] and "furlongs" in where["labs.hemoglobin.unit"]


_FORM = sf.to_form(ELIGIBLE)


@settings(max_examples=150, deadline=None)
@given(st.sets(st.sampled_from(sorted(_FORM))))
def test_any_subset_of_entries_is_checked_or_refused_by_field(dropped: set[str]) -> None:
    # Leaving any entries blank never crashes: the engine checks the file or names the fields.
    form = {k: v for k, v in _FORM.items() if k not in dropped}
    try:
        data = sf.to_patient_file(form, ELIGIBLE["patient_id"])
        check_eligibility(parse_patient(data, as_of=AS_OF), load_protocol(), stage="inclusion")
    except ReluthError as exc:
        assert exc.message


# --- the page ---------------------------------------------------------------------------


def _registered(site: Site) -> str:
    r = site.client("inv1").post("/patients", data={"centre": "C01"})
    assert r.status_code == 303
    return str(r.headers["location"]).rsplit("/", 1)[1]


def test_page_labels_every_input(site: Site) -> None:
    code = _registered(site)
    html = site.client("inv1").get(f"/patients/{code}/screening").text
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    aria = set(re.findall(r'id="([^"]+)"[^>]*aria-label="', html))
    assert len(ids) > 100
    assert [i for i in ids if i not in labelled | aria] == []


def test_structured_form_screens_and_saves(site: Site) -> None:
    code = _registered(site)
    inv = site.client("inv1")
    form = {**sf.to_form({**ELIGIBLE, "patient_id": code}), "csrf_token": site.csrf["inv1"]}
    form.pop("patient_id")
    live = inv.post(f"/patients/{code}/screening/check", data=form)
    assert 'data-testid="eligibility-status">eligible<' in live.text
    saved = inv.post(f"/patients/{code}/screening", data=form)
    assert saved.status_code == 303
    timeline = inv.get(f"/patients/{code}").text
    assert "eligible" in timeline


def test_rejected_form_keeps_input_and_puts_the_message_next_to_the_field(site: Site) -> None:
    code = _registered(site)
    inv = site.client("inv1")
    form = {**sf.to_form({**ELIGIBLE, "patient_id": code}), "csrf_token": site.csrf["inv1"]}
    form.pop("patient_id")
    form["labs.platelets.unit"] = ""  # a value without its unit
    form["age"] = "<b>300</b>"
    r = inv.post(f"/patients/{code}/screening", data=form)
    assert r.status_code == 422
    assert 'id="f-labs-platelets-unit-err"' in r.text and 'id="f-age-err"' in r.text
    assert 'name="labs.platelets.value" value="184000"' in r.text  # nothing typed is lost
    assert "&lt;b&gt;300&lt;/b&gt;" in r.text and "<b>300</b>" not in r.text
    from sqlalchemy import func, select

    from reluth.patients.models import Screening

    with site.db() as db:  # nothing was written
        assert db.scalar(select(func.count()).select_from(Screening)) == 0
