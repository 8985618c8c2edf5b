"""Investigator e-signatures (21 CFR 11.50, 11.70, 11.200): the principal investigator of the
patient's centre signs a form instance, a visit or the whole casebook by re-entering the
password. A signature shows the printed name, the date and time (UTC and site time) and its
meaning, and holds the SHA-256 of exactly the values signed; a later change to them
invalidates it (a row of ``signature_invalidations`` written at the write door,
:mod:`reluth.lifecycle.guard`), and reading it recomputes the hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from reluth.auth import service as auth
from reluth.auth.models import User
from reluth.auth.policy import Action, Resource
from reluth.auth.roles import Role
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, PermissionDenied, ValidationError
from reluth.forms.registry import table_named
from reluth.i18n import N_, get_locale
from reluth.i18n.reasons import Reason, Word, invalid_worded, refusal
from reluth.i18n.vocabulary import ROLES
from reluth.lifecycle import service as lifecycle
from reluth.lifecycle.guard import CASEBOOK_TABLES, in_casebook, record_key
from reluth.lifecycle.models import PrincipalInvestigator, Signature, SignatureInvalidation
from reluth.patients import service as patients
from reluth.patients.models import Patient
from reluth.sites import service as sites

SCOPES = ("form", "visit", "patient")
MEANING_MAX = 500
PRINTED_NAME_MAX = 120

#: The date column that places a record at a visit (the visit's forms, until the registry says).
VISIT_DATES = {
    "lab_results": "sample_date",
    "qol_questionnaires": "completed_on",
    "tumour_assessments": "assessment_date",
    "administrations": "administered_on",
    "adverse_events": "onset_date",
    "pre_randomization_assessments": "assessment_date",
}


def _text(value: str | None, field: str, limit: int) -> str:
    text = (value or "").strip() if isinstance(value, str | None) else ""
    if not text or len(text) > limit:
        raise ValidationError(
            field,
            "empty" if not text else "too long",
            f"1-{limit} characters",
            code="required" if not text else "text_too_long",
            params={"length": len(text), "limit": limit},
        )
    if any(not ch.isprintable() for ch in text):
        raise ValidationError(field, N_("contains control characters"), N_("printable text"))
    return text


# --------------------------------------------------------------- principal investigators


@service(Action.WRITE, Resource.USER)
def designate_principal_investigator(
    ctx: Ctx, username: str, centre_code: str, printed_name: str
) -> PrincipalInvestigator:
    """Make an investigator account assigned to the centre its principal investigator, with the
    printed name its signatures show (administrators; an audit row)."""
    user = auth.get_user(ctx.session, username)
    centre = sites.centre_by_code(ctx.session, centre_code)
    if user.role != Role.INVESTIGATOR.value:
        raise invalid_worded(
            "username",
            "not_an_investigator",
            N_("{field}: {user} is a {role} — an investigator is needed"),
            f"{username} is a {user.role}",
            "an investigator",
            user=username,
            role=Word(ROLES.get(user.role, user.role)),
        )
    if centre.id not in {c.id for c in user.centres}:
        raise ValidationError(
            "centre",
            f"{username} is not assigned to {centre.code}",
            "their centre",
            code="not_assigned_to_centre",
            params={"user": username, "centre": centre.code},
        )
    name = _text(printed_name, "printed_name", PRINTED_NAME_MAX)
    existing = _pi(ctx.session, user.id, centre.id)
    if existing is not None:
        if existing.printed_name == name:
            raise refusal(
                Conflict,
                "already_principal_investigator",
                N_("{user} is already principal investigator of {centre}"),
                user=username,
                centre=centre.code,
            )
        ctx.default_reason("printed name of the principal investigator changed")
        existing.printed_name = name
        ctx.session.flush()
        return existing
    row = PrincipalInvestigator(user_id=user.id, centre_id=centre.id, printed_name=name)
    ctx.session.add(row)
    ctx.session.flush()
    return row


@service(Action.WRITE, Resource.USER)
def withdraw_principal_investigator(ctx: Ctx, username: str, centre_code: str) -> None:
    """End a principal-investigator designation (needs the reason of the unit of work)."""
    user = auth.get_user(ctx.session, username)
    centre = sites.centre_by_code(ctx.session, centre_code)
    row = _pi(ctx.session, user.id, centre.id)
    if row is None:
        raise refusal(
            NotFound,
            "not_principal_investigator",
            N_("{user} is not principal investigator of {centre}"),
            user=username,
            centre=centre.code,
        )
    ctx.session.delete(row)
    ctx.session.flush()


def _pi(session: Session, user_id: int, centre_id: int) -> PrincipalInvestigator | None:
    return session.scalars(
        select(PrincipalInvestigator).where(
            PrincipalInvestigator.user_id == user_id, PrincipalInvestigator.centre_id == centre_id
        )
    ).first()


# ------------------------------------------------------------------ what is signed


def _canon(value: Any) -> Any:
    """A value as it is hashed: the same whether freshly entered or read back (Decimals without
    trailing zeros, datetimes in UTC)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


def _values(obj: Any) -> dict[str, Any]:
    mapper = inspect(obj).mapper
    return {a.key: _canon(getattr(obj, a.key)) for a in mapper.column_attrs}


def values_sha256(rows: list[Any]) -> str:
    """SHA-256 of exactly these rows' values (canonical JSON, rows ordered by table and id)."""
    body = sorted(([*record_key(r), _values(r)] for r in rows), key=lambda item: (item[0], item[1]))
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def children(session: Session, row: Any) -> list[Any]:
    from reluth.response.models import LesionMeasurement

    if row.__tablename__ == "tumour_assessments":
        return list(
            session.scalars(
                select(LesionMeasurement).where(LesionMeasurement.assessment_id == row.id)
            )
        )
    return []


def _casebook(session: Session, patient: Patient) -> list[Any]:
    rows: list[Any] = [patient]
    tables = lifecycle.data_tables()
    for table in sorted(CASEBOOK_TABLES - {"patients", "lesion_measurements"}):
        model = tables.get(table)
        if model is None:
            continue
        for row in session.scalars(select(model).where(model.patient_id == patient.id)):
            if in_casebook(session, row):
                rows += [row, *children(session, row)]
    return rows


def visit_rows(session: Session, patient: Patient, visit_code: str) -> list[Any]:
    from reluth.treatment.models import Visit

    visit = session.scalars(
        select(Visit).where(Visit.patient_id == patient.id, Visit.visit_code == visit_code)
    ).first()
    if visit is None:
        raise refusal(
            NotFound,
            "visit_not_found",
            N_("visit {visit} of patient {patient} not found"),
            visit=visit_code,
            patient=patient.patient_code,
        )
    rows: list[Any] = [visit]
    tables = lifecycle.data_tables()
    for table, column in sorted(VISIT_DATES.items()):
        model = tables[table]
        stmt: Any = select(model).where(
            model.patient_id == patient.id, getattr(model, column) == visit.visit_date
        )
        for row in session.scalars(stmt):
            if in_casebook(session, row):
                rows += [row, *children(session, row)]
    return rows


@dataclass(frozen=True)
class Signed:
    """What a signature is about: its scope, the record naming it and the rows signed."""

    scope: str
    table_name: str
    record_id: str
    rows: list[Any]


def _target(
    ctx: Ctx,
    patient: Patient,
    scope: str,
    visit_code: str | None,
    table: str | None,
    record_id: str | int | None,
) -> Signed:
    if scope not in SCOPES:
        raise ValidationError(
            "scope",
            f"{scope!r} is not known",
            ", ".join(SCOPES),
            code="not_accepted",
            params={"value": str(scope), "accepted": ", ".join(SCOPES)},
        )
    if scope == "patient":
        return Signed("patient", "patients", str(patient.id), _casebook(ctx.session, patient))
    if scope == "visit":
        rows = visit_rows(ctx.session, patient, _text(visit_code, "visit_code", 32))
        return Signed("visit", "visits", record_key(rows[0])[1], rows)
    row, owner = lifecycle.form_row(ctx, _text(table, "table", 64), record_id or "")
    if owner.patient_id != patient.id:
        raise lifecycle.record_not_found(str(table), record_id, patient.patient_code)
    key = record_key(row)
    return Signed("form", key[0], key[1], [row, *children(ctx.session, row)])


# ---------------------------------------------------------------------------- signing


@service(Action.WRITE, Resource.SIGNATURE)
def sign(
    ctx: Ctx,
    patient_code: str,
    scope: str,
    password: str,
    meaning: str | None = None,
    visit_code: str | None = None,
    table: str | None = None,
    record_id: str | int | None = None,
) -> Signature:
    """The principal investigator of the patient's centre signs a form (``table``,
    ``record_id``), a visit (``visit_code``) or the casebook (``scope`` "patient"), re-entering
    the password; the signature holds the hash of exactly the values signed."""
    patient = patients.get_patient(ctx, patient_code)
    user = auth.confirm_password(ctx.session, ctx.actor, password, N_("an electronic signature"))
    pi = _pi(ctx.session, user.id, patient.centre_id)
    if pi is None:
        raise refusal(
            PermissionDenied,
            "principal_investigator_only",
            N_("only the principal investigator of centre {centre} signs its casebooks"),
            centre=patient.centre.code,
        )
    target = _target(ctx, patient, scope, visit_code, table, record_id)
    # forms.yaml signature_meanings, in the language the signer reads
    default = ctx.trial.forms.signature_meaning(target.scope, get_locale())
    text = _text(meaning or default, "meaning", MEANING_MAX)
    digest = values_sha256(target.rows)
    for existing in _signatures(ctx.session, patient.id):
        if (
            existing.table_name == target.table_name
            and existing.record_id == target.record_id
            and existing.user_id == user.id
            and _state(ctx.session, existing)[0]
        ):
            raise refusal(
                Conflict,
                "already_signed",
                N_("{what} is already signed by {name}"),
                what=_what_named(existing),
                name=existing.printed_name,
            )
    now = ctx.now()
    row = Signature(
        scope=target.scope,
        patient_id=patient.id,
        table_name=target.table_name,
        record_id=target.record_id,
        user_id=user.id,
        username=user.username,
        printed_name=pi.printed_name,
        meaning=text,
        signed_at=now,
        site_time=now.astimezone(ctx.trial.zone).isoformat(timespec="seconds"),
        values_sha256=digest,
        covered=json.dumps(sorted("/".join(record_key(r)) for r in target.rows)),
    )
    ctx.session.add(row)
    ctx.session.flush()
    return row


def _signatures(session: Session, patient_id: int) -> list[Signature]:
    return list(
        session.scalars(
            select(Signature).where(Signature.patient_id == patient_id).order_by(Signature.id)
        )
    )


def _what_named(sig: Signature) -> Reason:
    """What ``sig`` signed, in the reader's language."""
    if sig.scope == "patient":
        return Reason("signed.casebook", N_("the casebook"))
    if sig.scope == "visit":
        return Reason("signed.visit", N_("visit record {record}"), {"record": sig.record_id})
    return Reason(
        "signed.form",
        N_("form {form} {record}"),
        {"form": table_named(sig.table_name), "record": sig.record_id},
    )


def _what(sig: Signature) -> str:
    if sig.scope == "patient":
        return "the casebook"
    if sig.scope == "visit":
        return f"visit record visits/{sig.record_id}"
    return f"form {sig.table_name}/{sig.record_id}"


def _current_rows(session: Session, sig: Signature) -> list[Any] | None:
    """The rows the signature covered, as stored now (None if one is gone)."""
    tables = lifecycle.data_tables()
    rows: list[Any] = []
    for key in json.loads(sig.covered):
        table, _, rid = key.partition("/")
        model = tables.get(table)
        row = session.get(model, int(rid)) if model is not None else None
        if row is None:
            return None
        rows.append(row)
    return rows


def _state(session: Session, sig: Signature) -> tuple[bool, str | None]:
    """(valid, why not): invalidated by a later change, or values no longer matching."""
    invalidation = session.scalars(
        select(SignatureInvalidation).where(SignatureInvalidation.signature_id == sig.id)
    ).first()
    if invalidation is not None:
        at = invalidation.at.strftime("%Y-%m-%d %H:%M UTC")
        return False, f"invalidated by {invalidation.change} ({invalidation.username}, {at})"
    rows = _current_rows(session, sig)
    if rows is None or values_sha256(rows) != sig.values_sha256:
        return False, "the signed values no longer match their hash"
    return True, None


@dataclass(frozen=True)
class SignatureView:
    id: int
    scope: str
    what: str
    printed_name: str
    username: str
    meaning: str
    signed_at_utc: str
    site_time: str
    values_sha256: str
    valid: bool
    invalid_because: str | None


def signature_view(session: Session, sig: Signature) -> SignatureView:
    valid, why = _state(session, sig)
    moment = sig.signed_at if sig.signed_at.tzinfo else sig.signed_at.replace(tzinfo=dt.UTC)
    return SignatureView(
        sig.id,
        sig.scope,
        _what(sig),
        sig.printed_name,
        sig.username,
        sig.meaning,
        moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        sig.site_time,
        sig.values_sha256,
        valid,
        why,
    )


@service(Action.READ, Resource.SIGNATURE)
def signatures(ctx: Ctx, patient_code: str) -> list[SignatureView]:
    """A patient's signatures, each with its state (valid, or why not)."""
    patient = patients.get_patient(ctx, patient_code)
    return [signature_view(ctx.session, s) for s in _signatures(ctx.session, patient.id)]


@service(Action.READ, Resource.SIGNATURE)
def principal_investigators(ctx: Ctx) -> list[tuple[str, str, str]]:
    """(username, centre code, printed name) of every designation the actor may see."""
    out = []
    for pi in ctx.session.scalars(select(PrincipalInvestigator)):
        user = ctx.session.get(User, pi.user_id)
        if user is not None and ctx.sees_centre(pi.centre_id):
            centre = next(
                (c for c in sites.list_centres(ctx.session) if c.id == pi.centre_id), None
            )
            out.append((user.username, centre.code if centre else "?", pi.printed_name))
    return sorted(out)
