"""E-mail notifications against a real SMTP server on loopback (aiosmtpd), read back: an SAE
entered and its reports reach pharmacovigilance, a query raised reaches the centre's staff and
its answer the person who raised it, the weekly digest lists overdue forms per centre; every
message is recorded with its delivery result, retried after a failure, and names patients only
by their trial pseudonym."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select
from tests.store.storekit import (
    ADMIN,
    INVESTIGATOR,
    NURSE,
    add_account,
    at,
    ready_patients,
    work,
)

from reluth.auth import service as auth
from reluth.auth.roles import Role
from reluth.core.trial import Trial
from reluth.errors import PermissionDenied, PreconditionFailed, ValidationError
from reluth.notify import mailer
from reluth.notify import service as notify
from reluth.notify.models import Notification
from reluth.patients import service as patients
from reluth.queries import service as queries
from reluth.safety import records, sae
from reluth.web.app import prepare_database

PV, MON, DM = "pv", "mon1", "dm1"
T0 = dt.datetime(2025, 3, 11, 9, 0, tzinfo=dt.UTC)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        msg = message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[attr-defined]
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = prepare_database(db_url)
    ready_patients(eng, 0, centres=("C01", "C02"))
    add_account(eng, PV, Role.PHARMACOVIGILANCE)
    add_account(eng, MON, Role.MONITOR, ("C01",))
    add_account(eng, DM, Role.DATA_MANAGER)
    with work(engine=eng, username=ADMIN, reason="notification addresses") as ctx:
        for user, address in (
            (PV, "pv@sponsor.example"),
            (MON, "monitor@cro.example"),
            (INVESTIGATOR, "investigator@chu.example"),
            (NURSE, "nurse@chu.example"),
        ):
            auth.set_email(ctx, user, address)
    yield eng
    eng.dispose()


def _trial(port: int | None, moment: dt.datetime = T0) -> Trial:
    trial = at(moment)
    url = None if port is None else f"smtp://127.0.0.1:{port}"
    settings = dataclasses.replace(
        trial.settings,
        smtp_url=url,
        smtp_from="reluth@trial.example",
        pv_email="pv-unit@sponsor.example",
    )
    return dataclasses.replace(trial, settings=settings)


def _deliver(engine: Engine, port: int | None) -> notify.Delivery:
    with work(engine, ADMIN, trial=_trial(port)) as ctx:
        return notify.deliver(ctx)


def _sae(engine: Engine, code: str) -> int:
    with work(engine, INVESTIGATOR, trial=_trial(None)) as ctx:
        return records.record_adverse_event(
            ctx,
            {
                "patient_id": code,
                "term": "Platelet count decreased",
                "grade": 4,
                "serious": True,
                "seriousness": "hospitalisation",
                "relatedness": "probable",
                "outcome": "recovering",
                "onset_date": "2025-03-09",
                "awareness_date": "2025-03-10",
            },
        ).id


def test_sae_and_follow_up_reach_pharmacovigilance(engine: Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    (code,) = ready_patients(engine, 1, centres=("C01",), start=10)
    ae_id = _sae(engine, code)
    assert _deliver(engine, port) == notify.Delivery(sent=2, failed=0, waiting=0)
    for address in ("pv@sponsor.example", "pv-unit@sponsor.example"):
        (msg,) = inbox.to(address)
        assert msg["Subject"] == f"[RELUTH] SAE entered: {code}, Platelet count decreased grade 4"
        assert msg["From"] == "reluth@trial.example"
        body = msg.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert f"/adverse-events/{ae_id}" in body and code in body
    with work(engine, INVESTIGATOR, trial=_trial(None)) as ctx:
        for n in range(2):
            sae.report_sae(
                ctx,
                ae_id,
                {"narrative": f"report {n}", "action_taken": "unknown", "outcome": "recovering"},
            )
    assert _deliver(engine, port).sent == 4
    subjects = [m["Subject"] for m in inbox.to("pv@sponsor.example")]
    assert subjects[1:] == [
        f"[RELUTH] SAE initial report: {code}, Platelet count decreased",
        f"[RELUTH] SAE follow-up report 1: {code}, Platelet count decreased",
    ]
    assert inbox.to("investigator@chu.example") == []  # the site is not told its own SAE
    with work(engine, ADMIN) as ctx:
        rows = notify.log(ctx)
    assert {(r.kind, r.status, r.attempts, r.created_by) for r in rows} == {
        ("sae", "sent", 1, INVESTIGATOR),
        ("sae_report", "sent", 1, INVESTIGATOR),
    }


def test_no_patient_identifier_beyond_the_pseudonym(
    engine: Engine, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    (code,) = ready_patients(engine, 1, centres=("C01",), start=20)
    with work(engine, INVESTIGATOR) as ctx:
        p = patients.find_patient(ctx.session, code)
        birth_year, sex = p.birth_year, p.sex
    _sae(engine, code)
    with work(engine, MON) as ctx:
        queries.open_query(ctx, code, "patients birth_year", "Source note says DUPONT, born 1961?")
    _deliver(engine, port)
    assert inbox.messages
    for _rcpt, msg in inbox.messages:
        text = msg.as_string()
        assert code in text
        assert "DUPONT" not in text  # the free-text question stays in the eCRF
        if birth_year is not None:
            assert str(birth_year) not in text
        assert "Sex" not in text and f"sex {sex}" not in text


def test_query_goes_to_the_centre_staff_and_its_answer_to_the_raiser(
    engine: Engine, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    (code,) = ready_patients(engine, 1, centres=("C01",), start=30)
    with work(engine, MON) as ctx:
        from sqlalchemy import select

        from reluth.patients.models import Inclusion, Patient

        inclusion = ctx.session.scalar(
            select(Inclusion.id).join(Patient).where(Patient.patient_code == code)
        )
        target = f"inclusion {inclusion} consent_date"  # a saved value of a registered form
        qid = queries.open_query(ctx, code, target, "Date?").id
    _deliver(engine, port)
    assert [m["Subject"] for m in inbox.to("investigator@chu.example")] == [
        f"[RELUTH] Data query {qid} on {code}"
    ]
    assert len(inbox.to("nurse@chu.example")) == 1
    assert inbox.to("monitor@cro.example") == []
    with work(engine, NURSE, reason=queries.answer_reason(qid)) as ctx:
        queries.answer_query(ctx, qid, "g/L, corrected")
    _deliver(engine, port)
    (answer,) = inbox.to("monitor@cro.example")
    assert answer["Subject"] == f"[RELUTH] Answer to data query {qid} on {code}"
    assert "g/L, corrected" not in answer.as_string()


def test_a_failed_delivery_is_recorded_and_retried(engine: Engine, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    (code,) = ready_patients(engine, 1, centres=("C01",), start=40)
    _sae(engine, code)
    down = _free_port()  # nothing listens there
    assert _deliver(engine, down) == notify.Delivery(sent=0, failed=2, waiting=2)
    with work(engine, ADMIN) as ctx:
        rows = ctx.session.scalars(select(Notification)).all()
        assert {(r.status, r.attempts) for r in rows} == {("failed", 1)}
        assert all("ConnectionRefusedError" in (r.last_error or "") for r in rows)
    assert inbox.messages == []
    assert _deliver(engine, port) == notify.Delivery(sent=2, failed=0, waiting=0)
    with work(engine, ADMIN) as ctx:
        rows = ctx.session.scalars(select(Notification)).all()
        assert {(r.status, r.attempts, r.last_error) for r in rows} == {("sent", 2, None)}
    assert len(inbox.messages) == 2
    assert _deliver(engine, port).sent == 0  # nothing is sent twice


def test_weekly_digest_lists_overdue_forms_per_centre(
    engine: Engine, smtp: tuple[Inbox, int]
) -> None:
    from tests.store.storekit import STAT

    from reluth.randomization import service as rnd

    inbox, port = smtp
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "statistician-secret-seed-2025", 8)
    (code,) = ready_patients(engine, 1, centres=("C01",), start=50)
    with work(engine, INVESTIGATOR) as ctx:
        rnd.randomize(ctx, code, "req-digest")
    later = T0 + dt.timedelta(days=120)
    with work(engine, DM, trial=_trial(None, later)) as ctx:
        per_centre = notify.weekly_digest(ctx)
    assert per_centre and set(per_centre) == {"C01"}
    _deliver(engine, port)
    (digest,) = inbox.to("investigator@chu.example")
    body = digest.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert digest["Subject"] == "[RELUTH] Overdue forms, centre C01"
    assert code in body and "days overdue" in body
    with work(engine, INVESTIGATOR) as ctx, pytest.raises(PermissionDenied):
        notify.weekly_digest(ctx)


def test_smtp_url_and_addresses_are_checked(engine: Engine) -> None:
    cfg = mailer.parse_url("smtps://pv%40x:s3cret@mail.example", "a@b")
    assert (cfg.host, cfg.port, cfg.implicit_tls, cfg.username, cfg.password) == (
        "mail.example",
        465,
        True,
        "pv@x",
        "s3cret",
    )
    assert mailer.parse_url("smtp://mail.example:587", "a@b").port == 587
    with pytest.raises(ValidationError, match="RELUTH_SMTP_URL"):
        mailer.parse_url("http://mail.example", "a@b")
    with work(engine, ADMIN) as ctx, pytest.raises(PreconditionFailed, match="RELUTH_SMTP_URL"):
        notify.deliver(ctx)
    with work(engine, ADMIN, reason="typo") as ctx, pytest.raises(ValidationError) as err:
        auth.set_email(ctx, PV, "not an address")
    assert err.value.field == "email"
    with work(engine, INVESTIGATOR, trial=_trial(9)) as ctx, pytest.raises(PermissionDenied):
        notify.deliver(ctx)


def test_each_recipient_reads_the_message_in_their_account_language(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: the nurse who chose French gets the query in French, the investigator with no
    choice gets the trial's language (RELUTH_LANGUAGE, English by default)."""
    from reluth.auth.models import User
    from reluth.patients.models import Inclusion, Patient

    (code,) = ready_patients(engine, 1, centres=("C01",), start=40)
    with work(engine, ADMIN, reason="the nurse reads French") as ctx:
        nurse = ctx.session.scalars(select(User).where(User.username == NURSE)).one()
        nurse.language = "fr"
    with work(engine, MON) as ctx:
        inclusion = ctx.session.scalar(
            select(Inclusion.id).join(Patient).where(Patient.patient_code == code)
        )
        qid = queries.open_query(ctx, code, f"inclusion {inclusion} consent_date", "Date?").id
    with work(engine, ADMIN) as ctx:
        rows = {
            r.recipient_username: r
            for r in ctx.session.scalars(select(Notification).where(Notification.kind == "query"))
        }
    assert rows[NURSE].subject == f"[RELUTH] Requête {qid} sur {code}"
    assert rows[NURSE].body.startswith(f"{MON} a ouvert la requête {qid}")
    assert rows[NURSE].body.endswith("-- reluth (ne pas répondre)\n")
    assert rows[INVESTIGATOR].subject == f"[RELUTH] Data query {qid} on {code}"
    assert rows[INVESTIGATOR].body.endswith("-- reluth (do not reply)\n")


def _text(msg: Message) -> str:
    """The body as written (SMTP carries CRLF line ends)."""
    return msg.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]


def _reads_french(engine: Engine, *usernames: str) -> None:
    from reluth.auth.models import User

    with work(engine, ADMIN, reason="these accounts read French") as ctx:
        for name in usernames:
            ctx.session.scalars(select(User).where(User.username == name)).one().language = "fr"


def test_sae_report_reaches_pharmacovigilance_in_its_language(
    engine: Engine, smtp: tuple[Inbox, int]
) -> None:
    """Issue 18: the SAE-report notice is written in the recipient's account language (French
    for the pharmacovigilance account that chose it), its subject and body; the shared
    mailbox with no account gets the trial's language (English here), read back over SMTP."""
    inbox, port = smtp
    _reads_french(engine, PV)
    (code,) = ready_patients(engine, 1, centres=("C01",), start=60)
    ae_id = _sae(engine, code)
    with work(engine, INVESTIGATOR, trial=_trial(None)) as ctx:
        for n in range(2):
            sae.report_sae(
                ctx,
                ae_id,
                {
                    "narrative": f"report {n}",
                    "action_taken": "unknown",
                    "outcome": "recovering",
                    "seriousness": ["hospitalisation"],
                },
            )
    _deliver(engine, port)
    french = inbox.to("pv@sponsor.example")
    assert [m["Subject"] for m in french[1:]] == [
        f"[RELUTH] EIG rapport initial : {code}, Platelet count decreased",
        f"[RELUTH] EIG rapport de suivi 1 : {code}, Platelet count decreased",
    ]
    body = _text(french[1])
    assert body.startswith(
        f"Le rapport initial de l’événement indésirable grave {ae_id} (Platelet count "
        f"decreased, grade 4) du patient {code} a été envoyé par {INVESTIGATOR}."
    )
    assert "Critères : hospitalisation ou prolongation d’hospitalisation" in body
    assert "évolution : en cours de résolution" in body
    assert f"/adverse-events/{ae_id}" in body and body.endswith("-- reluth (ne pas répondre)\n")
    for word in ("sent by", "Criteria", "outcome", "Assess it"):
        assert word not in body
    english = inbox.to("pv-unit@sponsor.example")
    assert english[1]["Subject"] == f"[RELUTH] SAE initial report: {code}, Platelet count decreased"
    text = _text(english[1])
    assert f"The initial report of serious adverse event {ae_id}" in text
    assert (
        "Criteria: hospitalisation or prolongation of hospitalisation; outcome recovering" in text
    )


def test_weekly_digest_is_written_in_each_recipients_language(
    engine: Engine, smtp: tuple[Inbox, int]
) -> None:
    """Issue 18: the nurse who reads French gets the digest in French (dates dd/mm/yyyy, the
    visit's label translated), the investigator with no choice gets the trial's language."""
    from tests.store.storekit import STAT

    from reluth.randomization import service as rnd

    inbox, port = smtp
    _reads_french(engine, NURSE)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "statistician-secret-seed-2025", 8)
    (code,) = ready_patients(engine, 1, centres=("C01",), start=70)
    with work(engine, INVESTIGATOR) as ctx:
        rnd.randomize(ctx, code, "req-digest-fr")
    later = T0 + dt.timedelta(days=120)
    with work(engine, DM, trial=_trial(None, later)) as ctx:
        notify.weekly_digest(ctx)
    _deliver(engine, port)
    (french,) = inbox.to("nurse@chu.example")
    (english,) = inbox.to("investigator@chu.example")
    assert french["Subject"] == "[RELUTH] Formulaires en retard, centre C01"
    body = _text(french)
    assert body.startswith("Centre C01 : ")
    assert f"au {later.date():%d/%m/%Y}" in body
    assert "jours de retard" in body and "fenêtre close le " in body
    assert code in body and "Ouvrez le tableau de bord" in body
    for word in ("overdue", "window closed", "Open the dashboard"):
        assert word not in body
    assert english["Subject"] == "[RELUTH] Overdue forms, centre C01"
    text = _text(english)
    assert "days overdue" in text and f"as of {later.date().isoformat()}" in text
