"""The trial-order refusals (reluth.patients.timeline) are message keys with their values:
English in the error's message, French where a French reader sees them (issue 18), the field
by its label, days as dd/mm/yyyy; both sides of each boundary."""

from __future__ import annotations

import datetime as dt

import pytest

from reluth.errors import ValidationError
from reluth.i18n import use_locale
from reluth.i18n.messages import describe
from reluth.patients import timeline

TODAY = dt.date(2025, 6, 30)
PRE = (1, 2)
M = timeline.Milestones(
    consent=dt.date(2024, 10, 28),
    inclusion=dt.date(2024, 10, 30),
    cycles={1: dt.date(2024, 11, 4), 2: dt.date(2024, 12, 30)},
)


def refused(kind: str, day: dt.date, field: str, **kw: object) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        timeline.check(M, kind, day, TODAY, field, pre_cycles=PRE, **kw)  # type: ignore[arg-type]
    return exc.value


def test_the_day_of_the_boundary_passes_and_the_day_before_is_refused_in_both_languages() -> None:
    assert timeline.check(M, "inclusion", M.consent, TODAY, "inclusion_date", pre_cycles=PRE)
    error = refused("inclusion", dt.date(2024, 10, 27), "inclusion_date")
    assert error.code == "date_out_of_order" and error.field == "inclusion_date"
    assert error.message == (
        "inclusion_date: 2024-10-27 is before the informed consent (2024-10-28) "
        "(accepted: a date on or after 2024-10-28)"
    )
    with use_locale("fr"):
        assert describe(error) == (
            "Date d’inclusion : le 27/10/2024 tombe avant le consentement éclairé (28/10/2024) "
            "(accepté : une date à partir du 28/10/2024)"
        )
    with use_locale("en"):
        assert describe(error) == (
            "Inclusion date: 2024-10-27 is before the informed consent (2024-10-28) "
            "(accepted: a date on or after 2024-10-28)"
        )


def test_a_cycle_on_the_day_of_the_previous_one_is_refused() -> None:
    day_after = dt.date(2024, 11, 5)
    moved = timeline.Milestones(consent=M.consent, inclusion=M.inclusion, cycles={1: M.cycles[1]})
    assert timeline.check(moved, "cycle", day_after, TODAY, "administered_on", 2, pre_cycles=PRE)
    with pytest.raises(ValidationError) as exc:
        timeline.check(moved, "cycle", M.cycles[1], TODAY, "administered_on", 2, pre_cycles=PRE)
    with use_locale("fr"):
        text = describe(exc.value)
    assert "le 04/11/2024 est le même jour que le cycle 1 (04/11/2024)" in text
    assert "une date après le 04/11/2024" in text and "administered_on" not in text


def test_a_future_date_and_a_date_after_death() -> None:
    assert timeline.in_range("visit_date", TODAY, TODAY)
    with pytest.raises(ValidationError) as exc:
        timeline.in_range("visit_date", TODAY + dt.timedelta(days=1), TODAY)
    assert exc.value.code == "date_in_future"
    with use_locale("fr"):
        assert describe(exc.value) == (
            "Date de visite : la date du 01/07/2025 est dans le futur "
            "(accepté : une date jusqu’au 30/06/2025 inclus)"
        )
    dead = timeline.Milestones(consent=M.consent, death=dt.date(2025, 3, 1))
    timeline.not_after_death("visit_date", dt.date(2025, 3, 1), dead)
    with pytest.raises(ValidationError) as exc:
        timeline.not_after_death("visit_date", dt.date(2025, 3, 2), dead)
    with use_locale("fr"):
        assert "le 02/03/2025 tombe après le décès du patient (01/03/2025)" in describe(exc.value)
    assert "2025-03-02 is after the patient's death (2025-03-01)" in exc.value.message


def test_a_death_before_the_latest_record_names_the_record() -> None:
    m = timeline.Milestones(
        consent=M.consent, latest_clinical=dt.date(2025, 4, 1), latest_clinical_what="visit"
    )
    assert timeline.check(m, "death", dt.date(2025, 4, 1), TODAY, "death_date", pre_cycles=PRE)
    with pytest.raises(ValidationError) as exc:
        timeline.check(m, "death", dt.date(2025, 3, 31), TODAY, "death_date", pre_cycles=PRE)
    assert "2025-03-31 is before the visit recorded on 2025-04-01" in exc.value.message
    with use_locale("fr"):
        assert "tombe avant le dernier enregistrement (visite du 01/04/2025)" in (
            describe(exc.value)
        )
