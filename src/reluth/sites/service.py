"""Centres: added by an administrator, read by everyone who works with them; the next patient
number of a centre, taken race-free inside the registering transaction."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.errors import Conflict, NotFound, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import refusal
from reluth.sites.models import Centre, PatientCounter

CENTRE_CODE = re.compile(r"^C\d{2}$")
NAME_MAX = 200

_BY_CODE = select(Centre).where(Centre.code == bindparam("code"))


def centre_by_code(session: Session, code: str) -> Centre:
    """The centre ``code`` (NotFound naming it); no permission involved (centre codes are not
    confidential), used by services that then check the actor against the centre's id."""
    centre = session.scalars(_BY_CODE, {"code": code}).first()
    if centre is None:
        raise refusal(
            NotFound,
            "centre_not_found",
            N_("centre '{centre}' not found (add it with `reluth centres add`)"),
            centre=code,
        )
    return centre


@service(Action.WRITE, Resource.CENTRE)
def add_centre(ctx: Ctx, code: str, name: str, opened_on: dt.date | None = None) -> Centre:
    """A new centre: code ``C`` + 2 digits, a name, optionally its opening date."""
    if not isinstance(code, str) or not CENTRE_CODE.match(code):
        raise ValidationError(
            "centre",
            f"{code!r} is not a centre code",
            "C followed by 2 digits",
            code="not_a_centre_code",
            params={"value": str(code)[:40]},
        )
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name", N_("empty"), N_("the centre's name"))
    if len(name.strip()) > NAME_MAX:
        raise ValidationError(
            "name",
            f"{len(name.strip())} characters",
            f"at most {NAME_MAX}",
            code="text_too_long",
            params={"length": len(name.strip()), "limit": NAME_MAX},
        )
    if opened_on is not None and opened_on > ctx.today():
        raise ValidationError(
            "opened",
            f"{opened_on} is in the future",
            f"<= {ctx.today()}",
            code="date_in_future",
            params={"value": opened_on, "today": ctx.today()},
        )
    session = ctx.session
    if session.scalars(_BY_CODE, {"code": code}).first() is not None:
        raise refusal(Conflict, "centre_exists", N_("centre {centre} already exists"), centre=code)
    centre = Centre(code=code, name=name.strip(), opened_on=opened_on, active=True)
    session.add(centre)
    session.flush()
    session.add(PatientCounter(centre_id=centre.id, last_number=0))
    session.flush()
    return centre


def list_centres(session: Session) -> list[Centre]:
    """All centres by code (codes and names are not confidential)."""
    return list(session.scalars(select(Centre).order_by(Centre.code)))


_TAKE = (
    update(PatientCounter)
    .where(PatientCounter.centre_id == bindparam("cid"))
    .values(last_number=PatientCounter.last_number + 1)
    .returning(PatientCounter.last_number)
)


def next_patient_number(session: Session, centre: Centre) -> int:
    """The centre's next patient number, taken under the counter row's lock (held until the
    registering transaction ends), so concurrent registrations never get the same number."""
    number = session.execute(_TAKE, {"cid": centre.id}).scalar_one_or_none()
    if number is None:  # a centre created before counters existed
        used = session.scalar(
            select(func.count())
            .select_from(PatientCounter)
            .where(PatientCounter.centre_id == centre.id)
        )
        if not used:
            session.add(PatientCounter(centre_id=centre.id, last_number=0))
            session.flush()
        number = session.execute(_TAKE, {"cid": centre.id}).scalar_one()
    return int(number)
