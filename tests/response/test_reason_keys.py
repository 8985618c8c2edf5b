"""Issue 18 item 5: the RECIST engine's notes and its month-6 (primary endpoint) reason are
message keys with values, written in the reader's language where shown, never by translating
formatted English; the English text stays what the datasets and ``--json`` carry. Evaluations
stored before the keys were (migration 0019) are read back by mapping their English to keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from reluth.i18n import use_locale
from reluth.i18n.reasons import Reason
from reluth.protocol.definition import load_protocol
from reluth.response import recist
from reluth.response.recist import NewLesions, RecistOptions
from reluth.response.recist import Response as R

RAND = dt.date(2024, 1, 1)
OPTIONS = RecistOptions.from_protocol(load_protocol())
ENGLISH_WORDS = ("progression on", "death on", "landmark", "window", "assessment", " on ")


def on(day: int) -> dt.date:
    return RAND + dt.timedelta(days=day)


def tps(*visits: tuple[int, R]) -> list[recist.TimePointResponse]:
    return [recist.TimePointResponse(on(d), r, NewLesions.NO) for d, r in visits]


@pytest.mark.parametrize(
    ("visits", "first_pd", "death", "french"),
    [
        (((56, R.SD), (98, R.PD)), 98, None, "progression le 08/04/2024, avant la fenêtre"),
        (((56, R.SD),), None, 120, "décès le 30/04/2024, avant la fenêtre"),
        (((56, R.SD), (150, R.PD)), 150, None, "progression le 30/05/2024, au plus tard à"),
        (((56, R.SD),), None, 150, "décès le 30/05/2024, dans la fenêtre"),
        (((56, R.SD), (168, R.NE)), None, None, "uniquement des évaluations non évaluables"),
        (((56, R.SD),), None, None, "aucune évaluation dans la fenêtre d’évaluation à 6 mois"),
        (((56, R.SD), (168, R.SD)), None, None, "maladie stable le 17/06/2024"),
        (((56, R.PR), (168, R.PR)), None, None, "réponse partielle le 17/06/2024"),
        (((56, R.CR), (168, R.CR)), None, None, "réponse complète le 17/06/2024"),
        (((56, R.SD), (168, R.SD)), None, 160, "décès le 09/06/2024, avant l’évaluation"),
    ],
)
def test_every_month6_reason_is_a_key_written_in_french(
    visits: tuple[tuple[int, R], ...], first_pd: int | None, death: int | None, french: str
) -> None:
    out = recist.patient_outcome(tps(*visits), RAND, OPTIONS, None if death is None else on(death))
    message = out.disease_control_month6_message
    assert isinstance(message, Reason) and message.key.startswith("recist.month6.")
    assert message.english() == out.disease_control_month6_reason  # datasets keep the English
    assert (out.first_pd_date is None) == (first_pd is None)
    with use_locale("fr"):
        shown = out.month6_reason()
    assert french in shown, shown
    assert not any(word in shown for word in ENGLISH_WORDS), shown
    with use_locale("en"):
        assert out.month6_reason() == out.disease_control_month6_reason
    # A row stored before the keys (English only) reads the same in French.
    legacy = recist.month6_message_of(out.disease_control_month6_reason)
    assert legacy is not None and legacy.key == message.key
    with use_locale("fr"):
        assert legacy.render() == shown


def test_progression_in_the_window_without_an_evaluable_assessment() -> None:
    """First PD given apart (as the datasets do) inside a window of NE assessments only."""
    control, reason, landmark = recist.month6_decision(
        tps((56, R.SD), (168, R.NE)), RAND, on(150), OPTIONS
    )
    assert (control, landmark, reason.key) == (False, None, "recist.month6.pd_in_window")
    with use_locale("fr"):
        assert reason.render() == (
            "progression le 30/05/2024, dans la fenêtre d’évaluation à 6 mois"
        )


def test_the_whole_evaluation_carries_the_month6_key() -> None:
    data = {
        "randomization_date": "2024-01-01",
        "baseline": {
            "date": "2023-12-25",
            "lesions": [{"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": 40}],
        },
        "followups": [
            {"date": on(56).isoformat(), "lesions": [{"id": "T1", "diameter_mm": 39}]},
            {"date": on(168).isoformat(), "lesions": [{"id": "T1", "diameter_mm": 38}]},
        ],
    }
    result = recist.evaluate(recist.parse_patient(data), OPTIONS)
    assert result.disease_control_month6_message is not None
    with use_locale("fr"):
        assert result.disease_control_month6_message.render() == "maladie stable le 17/06/2024"


@pytest.mark.parametrize(
    ("english", "french"),
    [
        ("targets not evaluated: T2, T3", "cibles non évaluées : T2, T3"),
        (
            "targets not evaluated (T2) but the partial sum 61.5 mm already meets PD against "
            "nadir 50 mm",
            "cibles non évaluées (T2) mais la somme partielle de 61,5 mm",
        ),
        (
            "PD re-dated: equivocal new lesion confirmed on 2024-08-12",
            "progression re-datée : nouvelle lésion équivoque confirmée le 12/08/2024",
        ),
        ("equivocal new lesion: not PD unless confirmed later", "nouvelle lésion équivoque"),
        ("PR continued: response already reached and no PD since (EORTC FAQ)", "maintenue"),
    ],
)
def test_stored_english_notes_map_back_to_their_keys(english: str, french: str) -> None:
    (note,) = recist.note_messages_of(english)
    assert isinstance(note, Reason) and note.key.startswith("recist.")
    assert note.english() == english
    with use_locale("fr"):
        assert french in note.render()


def test_notes_stored_together_split_and_unknown_text_stays_as_stored() -> None:
    joined = "targets not evaluated: T2; equivocal new lesion: not PD unless confirmed later"
    notes = recist.note_messages_of(joined)
    assert [n.key for n in notes if isinstance(n, Reason)] == [
        "recist.targets_not_evaluated",
        "recist.equivocal_new_lesion",
    ]
    assert recist.note_messages_of("") == ()
    assert recist.note_messages_of("a reviewer's free note") == ("a reviewer's free note",)
    assert recist.month6_message_of("something else") is None


def test_partial_sum_note_keeps_its_numbers_typed() -> None:
    (note,) = recist.note_messages_of(
        "targets not evaluated (T2, T3) but the partial sum 61.5 mm already meets PD against "
        "nadir 50 mm"
    )
    assert isinstance(note, Reason)
    assert note.params["partial"] == Decimal("61.5") and note.params["lesions"] == ["T2", "T3"]
