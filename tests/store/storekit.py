"""Helpers shared by the store tests: test accounts created through the services (the
bootstrap, then an administrator), their authenticated actors, service contexts on a fixed
trial clock, and ready-to-randomize patients."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from reluth.auth import service as auth
from reluth.auth.actor import Actor, AuthMethod
from reluth.auth.models import User
from reluth.auth.roles import Role
from reluth.core.context import Ctx, reading, writing
from reluth.core.trial import Trial
from reluth.db.session import read_session
from reluth.errors import NotFound
from reluth.patients import service as patients
from reluth.protocol.definition import load_protocol
from reluth.sites import service as sites
from reluth.treatment import service as treatment

#: Test accounts (usernames): the administrator, a research nurse and an investigator at every
#: test centre, the unblinded statistician.
ADMIN, NURSE, INVESTIGATOR, STAT = "admin1", "nurse1", "inv1", "stat1"
PASSWORD = "storekit-password-0001"
CENTRES = ("C01", "C02")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "patients"
ELIGIBLE: dict[str, Any] = json.loads((EXAMPLES / "eligible.json").read_text(encoding="utf-8"))
TODAY = dt.date(2025, 3, 5)

#: (disease control months, radiological progression, creatinine µmol/L, intercurrent treatment)
#: -> the 16 strata: DC lt18/ge18 x PR rad/nonrad x GFR lt60/ge60 x IT yes/no
STRATA_INPUTS = list(itertools.product((14, 26), (True, False), (97, 78), (True, False)))


def trial_on(day: dt.date = TODAY) -> Trial:
    """The shipped protocol with the clock stopped at noon (site time) of ``day``."""
    return Trial(load_protocol()).on(day)


#: The screening examination of the test patients: before inclusion and the second PRRT.
SCREENED_ON = "2024-10-25"


def patient_file(code: str, variant: int = 0, **changes: Any) -> dict[str, Any]:
    """The eligible example patient, renamed, in one of the 16 strata, examined on
    ``SCREENED_ON`` (before its inclusion on 2024-10-30)."""
    dc, rad, creat, inter = STRATA_INPUTS[variant % 16]
    data = copy.deepcopy(ELIGIBLE)
    data["patient_id"] = code
    data["assessment_date"] = SCREENED_ON
    data["first_prrt"]["disease_control_months"] = dc
    data["progression"]["radiological"] = rad
    data["labs"]["creatinine"]["value"] = creat
    data["history"]["intercurrent_treatment"] = inter
    data.update(changes)
    return data


def actor(engine: Engine, username: str) -> Actor:
    """The authenticated actor of test account ``username`` (as after a password login)."""
    with read_session(engine) as s:
        user = s.scalars(select(User).where(User.username == username)).one_or_none()
        if user is None:
            raise NotFound(f"test account {username!r} not created (call add_users first)")
        return auth.actor_for(user, AuthMethod.PASSWORD)


@contextmanager
def work(
    engine: Engine,
    username: str,
    today: dt.date = TODAY,
    reason: str | None = None,
    trial: Trial | None = None,
) -> Iterator[Ctx]:
    """An audited service context as test account ``username``, on ``today``."""
    with writing(engine, actor(engine, username), trial or trial_on(today), reason) as ctx:
        yield ctx


@contextmanager
def read(engine: Engine, username: str, today: dt.date = TODAY) -> Iterator[Ctx]:
    with reading(engine, actor(engine, username), trial_on(today)) as ctx:
        yield ctx


def add_users(engine: Engine, centres: tuple[str, ...] = CENTRES) -> None:
    """The test centres and accounts, created as the services create them: the bootstrap
    operator makes the administrator, who adds the centres and the other accounts."""
    with read_session(engine) as s:
        fresh = not auth.has_accounts(s)
        boot = auth.bootstrap_actor(s, "storekit") if fresh else None
    if boot is not None:
        with writing(engine, boot, trial_on()) as ctx:
            auth.create_user(ctx, ADMIN, Role.ADMIN.value, PASSWORD)
    with work(engine, ADMIN) as ctx:
        for c in centres:
            try:
                sites.centre_by_code(ctx.session, c)
            except NotFound:
                sites.add_centre(ctx, c, f"Centre {c}")
        for name, role, at in (
            (NURSE, Role.RESEARCH_NURSE, centres),
            (INVESTIGATOR, Role.INVESTIGATOR, centres),
            (STAT, Role.STATISTICIAN, ()),
        ):
            try:
                user = auth.get_user(ctx.session, name)
            except NotFound:
                auth.create_user(ctx, name, role.value, PASSWORD, at)
                continue
            have = {c.code for c in user.centres}
            if set(at) - have:
                ctx.writing.reason = "test centres added"
                auth.set_centres(ctx, name, sorted(have | set(at)))
                ctx.writing.reason = None


def add_account(engine: Engine, username: str, role: Role, centres: tuple[str, ...] = ()) -> None:
    """One more test account (the administrator creates it); ``add_users`` must have run."""
    with work(engine, ADMIN) as ctx:
        try:
            auth.get_user(ctx.session, username)
        except NotFound:
            auth.create_user(ctx, username, role.value, PASSWORD, centres)


def cli_token(engine: Engine, username: str) -> str:
    """A CLI login token of test account ``username`` (what `reluth login` stores), for
    RELUTH_TOKEN in command-line tests."""
    with writing(engine, actor(engine, username), Trial(load_protocol())) as ctx:
        _row, token = auth.cli_login(ctx)
    return token


#: The test women (the example patient file is a woman born in the 1950s) are postmenopausal:
#: no pregnancy test before their cycles.
NOT_CHILDBEARING = {"childbearing_potential": False, "reason": "postmenopausal"}


def not_childbearing(ctx: Ctx, code: str, on: str = "2024-10-30") -> None:
    """Record that the included woman ``code`` is not of childbearing potential (the
    protocol's pregnancy testing then asks no test before a cycle)."""
    from reluth.clinical import service as clinical

    clinical.record_childbearing(ctx, code, {**NOT_CHILDBEARING, "assessed_on": on})


def ready_patients(
    engine: Engine,
    n: int,
    centres: tuple[str, ...] = CENTRES,
    start: int = 0,
    stratum: int | None = None,
    assessed: bool = True,
) -> list[str]:
    """Register, screen, include and record both second-PRRT cycles and (``assessed``) a
    pre-randomization assessment without progression for ``n`` patients spread over all strata
    and centres, as the research nurse (the accounts are created if missing)."""
    add_users(engine, centres)
    codes = []
    with work(engine, NURSE) as ctx:
        for i in range(start, start + n):
            centre = centres[i % len(centres)]
            code = f"{centre}-{i + 1:04d}"
            patients.register_patient(ctx, centre, code)
            out = patients.screen_patient(
                ctx, patient_file(code, i if stratum is None else stratum)
            )
            assert out.status == "eligible", out
            patients.include_patient(ctx, code, dt.date(2024, 10, 28), dt.date(2024, 10, 30))
            not_childbearing(ctx, code)
            treatment.record_cycle(ctx, code, 1, dt.date(2024, 11, 4), Decimal("7.4"), "L1")
            treatment.record_cycle(ctx, code, 2, dt.date(2024, 12, 30), Decimal("7.4"), "L2")
            if assessed:
                patients.record_pre_randomization(ctx, code, dt.date(2025, 2, 24), False, "SD")
            codes.append(code)
    return codes


def at(moment: dt.datetime) -> Trial:
    """The shipped protocol with the clock stopped at ``moment``."""
    return Trial(load_protocol()).at(moment)


def _prepare_chunk(url: str, n: int, start: int, centres: tuple[str, ...]) -> list[str]:
    from reluth.db.engine import make_engine

    eng = make_engine(url)
    try:
        return ready_patients(eng, n, centres=centres, start=start)
    finally:
        eng.dispose()


def ready_patients_parallel(
    url: str, n: int, centres: tuple[str, ...] = CENTRES, workers: int = 4, chunk: int = 25
) -> list[str]:
    """``ready_patients`` split over forked processes (on PostgreSQL the preparation is
    dominated by round trips, which overlap across connections)."""
    import multiprocessing as mp

    from reluth.db.engine import make_engine

    eng = make_engine(url)
    add_users(eng, centres)  # the centres and accounts, once, before the workers
    eng.dispose()
    jobs = [(url, min(chunk, n - s), s, centres) for s in range(0, n, chunk)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.starmap(_prepare_chunk, jobs)
    return [code for part in parts for code in part]


def opened(slot: Any) -> dict[str, Any]:
    """A stored allocation slot's sealed content (arm, block, block size), opened with the
    test allocation key — what only the randomization service and the statistician can do."""
    from reluth import sealing
    from reluth.config import Settings

    return (
        sealing.require_key(Settings.from_env())
        .sealer()
        .open(slot.sealed, sealing.slot_place(slot.list_id, slot.stratum_key, slot.position))
    )


#: Transaction control, which ``statements(..., control=False)`` leaves out.
CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")


@contextmanager
def statements(engine: Engine, control: bool = False) -> Iterator[list[str]]:
    """The SQL sent to the database inside, one line each (an executemany is one call, one
    round trip); transaction control (BEGIN, COMMIT, SAVEPOINT) only with ``control``."""
    from sqlalchemy import event

    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if control or statement.split(None, 1)[0].upper() not in CONTROL:
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)
