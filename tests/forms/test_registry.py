"""The form registry (forms.yaml beside the protocol): every stored record kind is a registered
form, every field maps to a real column of its table, the code lists are the ones the domains
enforce, and a malformed registry is refused naming what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from reluth.core.trial import Trial
from reluth.db.registry import load_all_models
from reluth.errors import NotFound, ValidationError
from reluth.forms.bindings import BINDINGS
from reluth.forms.registry import DEFAULT_PATH, check_protocol, load_registry, parse_registry
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.response import recist
from reluth.safety import records

REGISTRY = load_registry()
RAW = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
METADATA = load_all_models()


def test_the_registry_is_versioned_with_the_protocol() -> None:
    protocol = load_protocol()
    assert DEFAULT_PATH.with_name("reluth.yaml").is_file()  # beside the protocol file
    check_protocol(REGISTRY, protocol.id, protocol.version)
    with pytest.raises(ValidationError, match=r"forms\.protocol"):
        check_protocol(REGISTRY, protocol.id, "2.0")
    assert Trial(protocol).forms == REGISTRY


def test_an_amendment_directory_carries_its_own_forms(tmp_path: Path) -> None:
    from reluth.forms.registry import forms_path_for

    (tmp_path / "reluth.yaml").write_text(DEFAULT_PATH.with_name("reluth.yaml").read_text())
    assert forms_path_for(tmp_path / "reluth.yaml") == DEFAULT_PATH  # none beside: shipped
    changed = copy.deepcopy(RAW)
    changed["version"] = "1.1"
    (tmp_path / "forms.yaml").write_text(yaml.safe_dump(changed))
    assert forms_path_for(tmp_path / "reluth.yaml") == tmp_path / "forms.yaml"
    assert load_registry(tmp_path / "forms.yaml").version == "1.1"


def test_every_table_with_patient_data_is_a_registered_form_or_says_why_not() -> None:
    with_patient = {
        name
        for name, table in METADATA.tables.items()
        if "patient_id" in table.columns or name == "patients"
    }
    forms = {f.table for f in REGISTRY.forms}
    assert with_patient - forms - set(REGISTRY.not_forms) == set()
    # the list of record kinds, each a form
    for kind in ("screening", "inclusion", "cycle", "pre_randomization", "lab",
                 "adverse_event", "qol", "visit", "central_read", "death", "end_of_study",
                 "dosimetry"):  # fmt: skip
        assert REGISTRY.form(kind).id == kind
    assert set(REGISTRY.not_forms) <= set(METADATA.tables)


def test_every_field_maps_to_a_real_column() -> None:
    for form in REGISTRY.forms:
        table = METADATA.tables[form.table]
        for col in form.where:
            assert col in table.columns, (form.id, col)
        for f in form.fields:
            if f.column is None:  # given again at a correction, not stored (lab lln, baseline)
                assert form.id == "lab" and f.name in ("lln", "baseline")
                continue
            owner, _, column = f.column.rpartition(".")
            target = METADATA.tables[owner] if owner else table
            assert column in target.columns, (form.id, f.name, f.column)


CLINICAL = ("conmed", "medical_history", "deviation", "pregnancy_test", "childbearing")
CLINICAL += ("withdrawal", "death", "end_of_study")


def test_correctable_fields_are_exactly_what_the_domain_lets_change() -> None:
    from reluth.clinical.forms import FORMS
    from reluth.patients.service import INCLUSION_EDITABLE, PRE_RANDOMIZATION_EDITABLE
    from reluth.qol.service import QOL_EDITABLE
    from reluth.response.service import READ_EDITABLE
    from reluth.safety.service import LAB_EDITABLE
    from reluth.treatment.service import CYCLE_EDITABLE, VISIT_EDITABLE

    domain = {
        "lab": LAB_EDITABLE,
        "adverse_event": records.AE_FIELDS,
        "cycle": CYCLE_EDITABLE,
        "visit": VISIT_EDITABLE,
        "inclusion": INCLUSION_EDITABLE,
        "pre_randomization": PRE_RANDOMIZATION_EDITABLE,
        "qol": QOL_EDITABLE,
        "central_read": READ_EDITABLE,
        # the clinical forms: every field of the form's one schema
        **{form_id: tuple(FORMS[form_id].model_fields) for form_id in CLINICAL},
    }
    assert set(domain) == set(BINDINGS)
    for form_id, editable in domain.items():
        names = {f.name for f in REGISTRY.form(form_id).correctable}
        assert names == set(editable), form_id
    for form in REGISTRY.forms:
        if form.id not in BINDINGS:
            assert not form.editable, f"{form.id} is editable but has no correction service"


def test_code_lists_are_the_ones_the_domains_enforce() -> None:
    assert REGISTRY.codes("relatedness") == records.RELATEDNESS
    assert REGISTRY.codes("ae_outcome") == records.OUTCOMES
    assert REGISTRY.codes("recist_response") == patients.RESPONSES
    assert REGISTRY.codes("death_cause") == patients.DEATH_CAUSES
    assert REGISTRY.codes("end_reason") == patients.END_REASONS
    assert REGISTRY.codes("new_lesions") == tuple(recist.NewLesions)
    assert REGISTRY.codes("lesion_status") == tuple(recist.LesionStatus)


def test_matrix_covers_every_kind_of_visit_of_the_schedule() -> None:
    import datetime as dt

    from reluth.protocol.schedule import planned_visits

    protocol = load_protocol()
    kinds = {
        v.kind
        for arm in protocol.arm_codes
        for v in planned_visits(dt.date(2025, 1, 6), arm, protocol)
    }
    assert kinds <= set(REGISTRY.matrix)
    assert [f.id for f in REGISTRY.forms_at("qol")] == ["visit", "qol"]


def test_unknown_form_and_field_are_named() -> None:
    with pytest.raises(NotFound, match=r"nonsense.*forms: registration, screening"):
        REGISTRY.form("nonsense")
    with pytest.raises(ValidationError, match="field: 'foo' is not a field of form lab"):
        REGISTRY.form("lab").field("foo")
    with pytest.raises(ValidationError, match="ZZ"):
        REGISTRY.missing_code(REGISTRY.form("lab"), "value", "ZZ")
    assert REGISTRY.missing_code(REGISTRY.form("lab"), "value", "ND") == "not done"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["forms"][0]["fields"][1].update(codes="nope"), "unknown code list"),
        (lambda d: d["forms"][0]["fields"][0].update(missing=["XX"]), "missing-data code"),
        (lambda d: d["matrix"].update(qol=["nope"]), "unknown form"),
        (lambda d: d["forms"].append(copy.deepcopy(d["forms"][0])), "form ids must differ"),
        (lambda d: d["forms"][0]["fields"][0].update(type="colour"), "type"),
    ],
)
def test_a_malformed_registry_is_refused_naming_the_problem(change, message) -> None:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(RAW)
    change(data)
    with pytest.raises(ValidationError, match=message):
        parse_registry(data)
