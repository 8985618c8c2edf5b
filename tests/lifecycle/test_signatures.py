"""Investigator e-signatures: only the principal investigator of the patient's centre signs, by
re-entering the password; the signature shows the printed name, UTC and site time and its
meaning, holds the hash of exactly the values signed, and any later change to them invalidates
it (an audit row); a freeze allows signing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from tests.store.storekit import (
    ADMIN,
    INVESTIGATOR,
    NURSE,
    PASSWORD,
    STAT,
    actor,
    add_account,
    read,
    ready_patients,
    trial_on,
    work,
)

from reluth.auth.actor import AuthMethod
from reluth.auth.roles import Role
from reluth.core.context import writing
from reluth.db.audit import AuditLog
from reluth.db.session import read_session
from reluth.errors import Conflict, PermissionDenied, ValidationError
from reluth.forms.registry import load_registry
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle import signature_service as signing
from reluth.safety import service as safety
from reluth.treatment import service as treatment

LAB = {"test": "alt", "value": "30", "unit": "U/L", "date": "2025-03-01", "uln": "40"}


def _setup(engine: Engine) -> tuple[str, int]:
    (code,) = ready_patients(engine, 1)
    add_account(engine, "inv9", Role.INVESTIGATOR, ("C01",))
    add_account(engine, "dm1", Role.DATA_MANAGER)
    with work(engine, ADMIN) as ctx:
        signing.designate_principal_investigator(ctx, INVESTIGATOR, "C01", "Dr Anne Martin")
    with work(engine, NURSE) as ctx:
        lab = safety.record_lab(ctx, code, dict(LAB)).id
    return code, lab


def _sign(engine: Engine, code: str, scope: str = "patient", user: str = INVESTIGATOR, **kw):  # type: ignore[no-untyped-def]
    with work(engine, user) as ctx:
        return signing.signature_view(
            ctx.session, signing.sign(ctx, code, scope, kw.pop("password", PASSWORD), **kw)
        )


def test_the_pi_signs_the_casebook_and_a_later_change_invalidates_it(engine: Engine) -> None:
    code, lab = _setup(engine)
    signed = _sign(engine, code)
    assert signed.valid and signed.printed_name == "Dr Anne Martin"
    assert signed.meaning == load_registry().signature_meanings["casebook"]
    assert signed.signed_at_utc == "2025-03-05 11:00:00 UTC"
    assert signed.site_time == "2025-03-05T12:00:00+01:00"  # Europe/Paris in March
    with read(engine, NURSE) as ctx:
        (view,) = signing.signatures(ctx, code)
    assert view.valid and view.values_sha256 == signed.values_sha256
    with work(engine, NURSE, reason="transcription error") as ctx:
        safety.edit_lab(ctx, code, lab, {"value": "31"})
    with read(engine, NURSE) as ctx:
        (view,) = signing.signatures(ctx, code)
    assert not view.valid and f"update lab_results/{lab}" in (view.invalid_because or "")
    with read_session(engine) as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.table_name == "signature_invalidations")
        ).all()
    assert [r.action for r in rows] == ["insert"] and rows[0].reason == "transcription error"
    again = _sign(engine, code)  # re-signed after review
    assert again.valid


def test_a_new_record_invalidates_the_casebook_but_not_a_form_signature(engine: Engine) -> None:
    code, lab = _setup(engine)
    form = _sign(engine, code, "form", table="lab_results", record_id=lab)
    book = _sign(engine, code)
    assert form.what == f"form lab_results/{lab}"
    with work(engine, NURSE) as ctx:
        safety.record_lab(ctx, code, dict(LAB, value="35"))
    with read(engine, NURSE) as ctx:
        views = {v.id: v for v in signing.signatures(ctx, code)}
    assert views[form.id].valid and not views[book.id].valid


def test_a_visit_signature_covers_the_visit_and_its_dated_records(engine: Engine) -> None:
    from reluth.randomization import service as rnd

    code, _lab = _setup(engine)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "minimization")
    with work(engine, INVESTIGATOR) as ctx:
        rnd.randomize(ctx, code, "v")
    later = dt.date(2025, 12, 1)
    with work(engine, NURSE, today=later) as ctx:
        treatment.record_visit(ctx, code, "TA-W08", dt.date(2025, 5, 5))
        lab = safety.record_lab(ctx, code, dict(LAB, date="2025-05-05")).id
        other = safety.record_lab(ctx, code, dict(LAB, date="2025-05-20")).id
    with work(engine, INVESTIGATOR, today=later) as ctx:
        sig = signing.sign(ctx, code, "visit", PASSWORD, visit_code="TA-W08")
        assert sig.covered.count("lab_results/") == 1 and f"lab_results/{lab}" in sig.covered
    with work(engine, NURSE, today=later, reason="typo") as ctx:
        safety.edit_lab(ctx, code, other, {"value": "33"})  # another date: still valid
    with read(engine, NURSE) as ctx:
        (view,) = signing.signatures(ctx, code)
    assert view.valid and view.what.startswith("visit record visits/")
    with work(engine, NURSE, today=later, reason="typo") as ctx:
        safety.edit_lab(ctx, code, lab, {"value": "32"})  # the lab of the visit date
    with read(engine, NURSE) as ctx:
        (view,) = signing.signatures(ctx, code)
    assert not view.valid


def test_who_may_sign_and_how(engine: Engine) -> None:
    code, _lab = _setup(engine)
    with pytest.raises(ValidationError, match="password: incorrect"):
        _sign(engine, code, password="not my password")
    with pytest.raises(PermissionDenied, match="principal investigator"):
        _sign(engine, code, user="inv9")  # an investigator, not the PI
    with pytest.raises(PermissionDenied):
        _sign(engine, code, user=NURSE)
    token_actor = actor(engine, INVESTIGATOR)
    token_actor = type(token_actor)(
        token_actor.username, token_actor.role, token_actor.centre_ids, AuthMethod.API_TOKEN,
        token_actor.user_id,
    )  # fmt: skip
    with (
        pytest.raises(PermissionDenied, match="password login"),
        writing(engine, token_actor, trial_on()) as ctx,
    ):
        signing.sign(ctx, code, "patient", PASSWORD)
    with pytest.raises(ValidationError, match="scope"):
        _sign(engine, code, "everything")
    _sign(engine, code)
    with pytest.raises(Conflict, match="already signed"):
        _sign(engine, code)
    with pytest.raises(ValidationError, match="investigator"), work(engine, ADMIN) as ctx:
        signing.designate_principal_investigator(ctx, "dm1", "C01", "Someone")


def test_signing_goes_on_during_a_freeze_but_not_under_a_lock(engine: Engine) -> None:
    from reluth.errors import Locked

    code, _lab = _setup(engine)
    with work(engine, "dm1") as ctx:
        lifecycle.lock(ctx, "study", None, "review", kind="freeze")
    assert _sign(engine, code).valid
    with work(engine, "dm1") as ctx:
        lifecycle.lock(ctx, "patient", code, "locked")
    with pytest.raises(Locked):
        _sign(engine, code, "form", table="lab_results", record_id=_lab)


def test_wrong_signing_passwords_are_throttled_and_the_block_is_audited(engine: Engine) -> None:
    """21 CFR 11.300(d): attempts to use another's signing password are limited. Beyond three
    wrong passwords signing is blocked for a delay (doubling, as for logins), even with the right
    password, the block is an audit event, and it lifts once the delay has passed."""
    code, _lab = _setup(engine)
    for _ in range(4):
        with pytest.raises(ValidationError, match="password: incorrect"):
            _sign(engine, code, password="guess")
    with pytest.raises(ValidationError, match="blocked"):
        _sign(engine, code)  # the right password, inside the block (the test clock stands still)
    with read_session(engine) as s:
        locks = s.scalars(select(AuditLog).where(AuditLog.action == "lock")).all()
        assert [row.record_id for row in locks] == [f"confirm:{INVESTIGATOR}"]
    with work(engine, INVESTIGATOR, today=dt.date(2025, 6, 2)) as ctx:  # a later day
        signed = signing.sign(ctx, code, "patient", PASSWORD)
        assert signed.username == INVESTIGATOR
