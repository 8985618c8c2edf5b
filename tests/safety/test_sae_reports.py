"""SAE reports and the sponsor's assessment: ICH E2A criteria, initial and numbered follow-up
reports, causality and expectedness against the protocol's reference safety information, the
SUSAR flag and its 7- or 15-day clock (both sides of each due second), the CIOMS-like PDF
(text read back from the PDF), and who may do what."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select
from tests.store.storekit import INVESTIGATOR, add_account, at, ready_patients, work

from reluth.auth.roles import Role
from reluth.db.audit import AuditLog
from reluth.errors import Conflict, PermissionDenied, PreconditionFailed, ValidationError
from reluth.i18n import use_locale
from reluth.protocol.definition import load_protocol
from reluth.safety import records, sae, seriousness
from reluth.web.app import prepare_database

PV = "pv"
PARIS = ZoneInfo("Europe/Paris")
REPORTED = dt.datetime(2025, 3, 11, 9, 0, tzinfo=dt.UTC)
PROTOCOL = load_protocol()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = prepare_database(db_url)
    ready_patients(eng, 0, centres=("C01",))
    add_account(eng, PV, Role.PHARMACOVIGILANCE)
    yield eng
    eng.dispose()


def _sae(engine: Engine, start: int = 10, **extra: object) -> tuple[str, int]:
    (code,) = ready_patients(engine, 1, centres=("C01",), start=start)
    with work(engine, INVESTIGATOR, today=dt.date(2025, 3, 11)) as ctx:
        data = {
            "patient_id": code,
            "term": "Platelet count decreased",
            "grade": 4,
            "serious": True,
            "relatedness": "probable",
            "outcome": "recovering",
            "onset_date": "2025-03-09",
            "awareness_date": "2025-03-10",
            **extra,
        }
        return code, records.record_adverse_event(ctx, data).id


FIRST = {
    "narrative": "Grade 4 thrombocytopenia 6 weeks after cycle 3; admitted for transfusion.",
    "action_taken": "drug_interrupted",
    "treatment": "Platelet transfusion",
    "outcome": "recovering",
}


def test_seriousness_criteria_are_the_ich_e2a_ones_and_need_a_serious_event(
    engine: Engine,
) -> None:
    code, ae_id = _sae(engine, seriousness="hospitalisation,life_threatening")
    with work(engine, INVESTIGATOR, today=dt.date(2025, 3, 11)) as ctx:
        row = sae.dossier(ctx, ae_id)
        assert row.criteria == ("life_threatening", "hospitalisation")  # the standard's order
        base = {
            "patient_id": code,
            "term": "Nausea",
            "grade": 2,
            "relatedness": "possible",
            "outcome": "recovering",
            "onset_date": "2025-03-09",
        }
        with pytest.raises(ValidationError) as err:
            records.record_adverse_event(ctx, base | {"serious": False, "seriousness": "death"})
        assert err.value.field == "adverse_event.seriousness" and "not marked serious" in str(
            err.value
        )
        with pytest.raises(ValidationError) as err:
            records.record_adverse_event(
                ctx,
                base | {"serious": True, "awareness_date": "2025-03-10", "seriousness": ["cancer"]},
            )
        assert "unknown criterion 'cancer'" in str(err.value) and "medically_important" in str(
            err.value
        )
        with pytest.raises(ValidationError, match="outcome fatal"):
            records.record_adverse_event(
                ctx,
                base | {"serious": True, "awareness_date": "2025-03-10", "seriousness": "death"},
            )


def test_initial_report_then_numbered_follow_ups_audited(engine: Engine) -> None:
    _code, ae_id = _sae(engine)
    with work(engine, INVESTIGATOR, trial=at(REPORTED)) as ctx:
        with pytest.raises(ValidationError) as err:
            sae.report_sae(ctx, ae_id, FIRST)  # the event has no criterion yet
        assert err.value.field == "sae_report.seriousness"
        first = sae.report_sae(ctx, ae_id, FIRST | {"seriousness": ["hospitalisation"]})
        assert (first.sequence, first.reported_by) == (0, INVESTIGATOR)
    with work(engine, INVESTIGATOR, trial=at(REPORTED + dt.timedelta(days=3))) as ctx:
        follow = sae.report_sae(
            ctx,
            ae_id,
            FIRST
            | {"seriousness": "hospitalisation", "outcome": "recovered", "narrative": "Recovered."},
        )
        assert follow.sequence == 1
        with pytest.raises(ValidationError) as err:
            sae.report_sae(ctx, ae_id, FIRST | {"seriousness": "death"})
        assert err.value.field == "sae_report.outcome"
        with pytest.raises(ValidationError) as err:
            sae.report_sae(
                ctx, ae_id, FIRST | {"seriousness": "disability", "action_taken": "stopped"}
            )
        assert err.value.field == "sae_report.action_taken"
    with work(engine, INVESTIGATOR) as ctx:
        labels = [r.label for r in sae.dossier(ctx, ae_id).reports]
        audit = ctx.session.scalars(
            select(AuditLog.record_id).where(
                AuditLog.table_name == "sae_reports", AuditLog.action == "insert"
            )
        ).all()
    assert labels == ["initial report", "follow-up report 1"]
    assert len(set(audit)) == 2


def test_a_non_serious_event_has_no_report(engine: Engine) -> None:
    _code, ae_id = _sae(engine, 20, serious=False, grade=2, awareness_date=None)
    with work(engine, INVESTIGATOR) as ctx, pytest.raises(PreconditionFailed, match="not serious"):
        sae.report_sae(ctx, ae_id, FIRST | {"seriousness": "hospitalisation"})


def test_assessment_against_the_reference_safety_information_and_susar(engine: Engine) -> None:
    _code, ae_id = _sae(engine, 30, seriousness="life_threatening")
    with work(engine, INVESTIGATOR, trial=at(REPORTED)) as ctx:
        sae.report_sae(ctx, ae_id, FIRST)
    with work(engine, INVESTIGATOR) as ctx, pytest.raises(PermissionDenied):
        sae.assess_report(ctx, ae_id, 0, "related", "unexpected")
    with work(engine, PV, trial=at(REPORTED + dt.timedelta(hours=2))) as ctx:
        with pytest.raises(ValidationError) as err:
            sae.assess_report(ctx, ae_id, 0, "maybe", "unexpected")
        assert err.value.field == "assessment.causality"
        row = sae.assess_report(ctx, ae_id, 0, "related", "unexpected", "not in SmPC 4.8")
        rsi = PROTOCOL.safety.reference_safety_information
        assert (row.rsi_document, row.rsi_version, row.susar) == (rsi.document, rsi.version, True)
        with pytest.raises(Conflict, match="already assessed"):
            sae.assess_report(ctx, ae_id, 0, "not_related", "expected")
    with work(engine, PV, trial=at(REPORTED + dt.timedelta(days=2))) as ctx:
        view = sae.dossier(ctx, ae_id).reports[0]
        clock = view.susar_clock
        assert clock is not None and clock.days == 7 and clock.late is False
        assert clock.day0 == dt.date(2025, 3, 11)
        # due before 2025-03-19 00:00 Paris = 2025-03-18 23:00 UTC
        assert clock.due_before == dt.datetime(2025, 3, 18, 23, 0, tzinfo=dt.UTC)
        sae.record_susar_submission(ctx, ae_id, 0, "EV-2025-000123")
        with pytest.raises(Conflict, match="already recorded"):
            sae.record_susar_submission(ctx, ae_id, 0, "again")
    with work(engine, PV, trial=at(REPORTED + dt.timedelta(days=30))) as ctx:
        stopped = sae.dossier(ctx, ae_id).reports[0].susar_clock
        assert stopped is not None and stopped.late is False and stopped.submitted_at is not None


def test_a_related_expected_event_is_not_a_susar(engine: Engine) -> None:
    _code, ae_id = _sae(engine, 40, seriousness="hospitalisation")
    with work(engine, INVESTIGATOR, trial=at(REPORTED)) as ctx:
        sae.report_sae(ctx, ae_id, FIRST)
    with work(engine, PV, trial=at(REPORTED)) as ctx:
        assert sae.assess_report(ctx, ae_id, 0, "related", "expected").susar is False
        with pytest.raises(PreconditionFailed, match="not assessed as a SUSAR"):
            sae.record_susar_submission(ctx, ae_id, 0, "EV-1")
        assert sae.dossier(ctx, ae_id).reports[0].susar_clock is None


@pytest.mark.parametrize(
    ("criteria", "known", "due_before"),
    [
        # fatal / life-threatening: 7 calendar days; day 0 = the sponsor's day of knowledge
        (
            ("death",),
            dt.datetime(2025, 3, 11, 22, 30, tzinfo=dt.UTC),  # 23:30 Paris, 11 March
            dt.datetime(2025, 3, 18, 23, 0, tzinfo=dt.UTC),
        ),
        # 23:30 UTC on 11 March is already 12 March in Paris: day 0 moves
        (
            ("life_threatening",),
            dt.datetime(2025, 3, 11, 23, 30, tzinfo=dt.UTC),
            dt.datetime(2025, 3, 19, 23, 0, tzinfo=dt.UTC),
        ),
        # the others: 15 days; across the spring clock change (due at 00:00 CEST = 22:00 UTC)
        (
            ("hospitalisation",),
            dt.datetime(2025, 3, 20, 9, 0, tzinfo=dt.UTC),
            dt.datetime(2025, 4, 4, 22, 0, tzinfo=dt.UTC),
        ),
    ],
)
def test_susar_clock_on_both_sides_of_the_due_second(
    criteria: tuple[str, ...], known: dt.datetime, due_before: dt.datetime
) -> None:
    on_time = seriousness.susar_clock(known, criteria, due_before - dt.timedelta(seconds=1), PARIS)
    assert on_time.due_before == due_before and on_time.late is False
    assert seriousness.susar_clock(known, criteria, due_before, PARIS).late is True
    submitted = seriousness.susar_clock(
        known, criteria, due_before + dt.timedelta(days=9), PARIS, submitted_at=due_before
    )
    assert submitted.late is True and submitted.hours_left == Decimal("0.0")


def test_cioms_pdf_holds_the_report_and_no_identifier_beyond_the_pseudonym(engine: Engine) -> None:
    code, ae_id = _sae(engine, 50, seriousness="hospitalisation")
    with work(engine, INVESTIGATOR, trial=at(REPORTED)) as ctx:
        sae.report_sae(ctx, ae_id, FIRST | {"narrative": "<script>x</script> platelets 9 G/L"})
    with work(engine, PV, trial=at(REPORTED + dt.timedelta(hours=1))) as ctx:
        sae.acknowledge_receipt(ctx, ae_id)
        sae.assess_report(ctx, ae_id, 0, "related", "unexpected")
    with work(engine, PV, trial=at(REPORTED + dt.timedelta(days=1))) as ctx:
        pdf = sae.cioms_pdf(ctx, ae_id, 0)
    assert pdf.startswith(b"%PDF")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    flat = " ".join(text.split())
    for expected in (
        code,
        "CIOMS",
        "initial report",
        "Platelet count decreased, grade 4",
        "[X] Requires inpatient hospitalisation",
        "[ ] Results in death",
        "<script>x</script> platelets 9 G/L",  # shown as text, never markup
        "Cycle delayed or interrupted",
        "Platelet transfusion",
        "SUSAR yes",
        "15-day clock",
        PROTOCOL.safety.reference_safety_information.document.split(",")[0],
        "Lutathera",
    ):
        assert expected in flat, expected
    with work(engine, PV) as ctx, pytest.raises(Exception, match="follow-up report 1"):
        sae.cioms_pdf(ctx, ae_id, 1)


def test_a_french_reader_gets_the_cioms_report_with_french_beside_the_official_boxes(
    engine: Engine,
) -> None:
    """Issue 18: CIOMS I is an international form, so its official English box titles and the
    ICH E2A criteria stay, with the French beside them for a French reader; what the form says
    in its own words (report type, clock, assessment, administrations) is in French, days as
    dd/mm/yyyy and numbers with a decimal comma; free text stays as typed."""
    _code, ae_id = _sae(engine, 60, seriousness="hospitalisation")
    with work(engine, INVESTIGATOR, trial=at(REPORTED)) as ctx:
        sae.report_sae(ctx, ae_id, FIRST)
    with work(engine, PV, trial=at(REPORTED + dt.timedelta(hours=1))) as ctx:
        sae.acknowledge_receipt(ctx, ae_id)
        sae.assess_report(ctx, ae_id, 0, "related", "unexpected")
    with use_locale("fr"), work(engine, PV, trial=at(REPORTED + dt.timedelta(days=1))) as ctx:
        pdf = sae.cioms_pdf(ctx, ae_id, 0)
    flat = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    for expected in (
        "I. Reaction information / Informations sur la réaction",
        "7. Event (CTCAE v5.0 term, grade) / Événement (terme CTCAE v5.0, grade)",
        "Platelet count decreased, grade 4",  # the CTCAE term as coded
        "[X] Requires inpatient hospitalisation or prolongation of existing hospitalisation / "
        "Nécessite une hospitalisation ou la prolongation d’une hospitalisation",
        "Cycle delayed or interrupted / Cycle retardé ou interrompu",
        "rapport initial",
        "SUSAR / EIGI oui",
        "délai de 15 jours",
        "11/03/2025",  # the onset day or the report's, dd/mm/yyyy
        "en cours de résolution",
        FIRST["narrative"],
        "Page 1 sur",
    ):
        assert expected in flat, expected
    for english in ("initial report", "15-day clock", "not yet assessed", "page 1 of", "SUSAR yes"):
        assert english not in flat, english
