"""Helpers shared by the store tests (actors, database set-up)."""

from __future__ import annotations

from reluth.auth.roles import Role
from reluth.db.session import Actor

ADMIN = Actor("admin1", Role.ADMIN)
NURSE = Actor("nurse1", Role.RESEARCH_NURSE)
INVESTIGATOR = Actor("inv1", Role.INVESTIGATOR)  # randomizes (auth.policy)
STAT = Actor("stat1", Role.STATISTICIAN)

import copy  # noqa: E402
import datetime as dt  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import Engine  # noqa: E402

from reluth.auth.models import User  # noqa: E402
from reluth.db.session import unit_of_work  # noqa: E402
from reluth.patients import service as patients  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "patients"
ELIGIBLE: dict[str, Any] = json.loads((EXAMPLES / "eligible.json").read_text(encoding="utf-8"))
TODAY = dt.date(2025, 3, 5)

#: (disease control months, radiological progression, creatinine µmol/L, intercurrent treatment)
#: -> the 16 strata: DC lt18/ge18 x PR rad/nonrad x GFR lt60/ge60 x IT yes/no
STRATA_INPUTS = list(itertools.product((14, 26), (True, False), (97, 78), (True, False)))


def patient_file(code: str, variant: int = 0, **changes: Any) -> dict[str, Any]:
    """The eligible example patient, renamed, in one of the 16 strata."""
    dc, rad, creat, inter = STRATA_INPUTS[variant % 16]
    data = copy.deepcopy(ELIGIBLE)
    data["patient_id"] = code
    data["first_prrt"]["disease_control_months"] = dc
    data["progression"]["radiological"] = rad
    data["labs"]["creatinine"]["value"] = creat
    data["history"]["intercurrent_treatment"] = inter
    data.update(changes)
    return data


def add_users(engine: Engine) -> None:
    with unit_of_work(engine, ADMIN) as uow:
        for a in (ADMIN, NURSE, INVESTIGATOR, STAT):
            uow.session.add(User(username=a.username, role=a.role, password_hash="x"))


def ready_patients(
    engine: Engine,
    n: int,
    centres: tuple[str, ...] = ("C01", "C02"),
    start: int = 0,
    stratum: int | None = None,
) -> list[str]:
    """Register, screen, include and record both second-PRRT cycles and a pre-randomization
    assessment without progression for ``n`` patients spread over all strata and centres."""
    codes = []
    with unit_of_work(engine, NURSE) as uow:
        s = uow.session
        for c in centres:
            if (
                s.scalars(patients.select(patients.Centre).where(patients.Centre.code == c)).first()
                is None
            ):
                patients.add_centre(s, c, f"Centre {c}")
        for i in range(start, start + n):
            centre = centres[i % len(centres)]
            code = f"{centre}-{i + 1:04d}"
            patients.register_patient(s, centre, code, today=TODAY)
            out = patients.screen_patient(
                s, patient_file(code, i if stratum is None else stratum), today=TODAY
            )
            assert out.status == "eligible", out
            patients.include_patient(s, code, dt.date(2024, 10, 28), dt.date(2024, 10, 30), TODAY)
            patients.record_cycle(s, code, 1, dt.date(2024, 11, 4), Decimal("7.4"), "L1", TODAY)
            patients.record_cycle(s, code, 2, dt.date(2024, 12, 30), Decimal("7.4"), "L2", TODAY)
            patients.record_pre_randomization(
                s, code, dt.date(2025, 2, 24), False, "SD", None, TODAY
            )
            codes.append(code)
    return codes


def _prepare_chunk(url: str, n: int, start: int, centres: tuple[str, ...]) -> list[str]:
    from reluth.db.engine import make_engine

    eng = make_engine(url)
    try:
        return ready_patients(eng, n, centres=centres, start=start)
    finally:
        eng.dispose()


def ready_patients_parallel(
    url: str, n: int, centres: tuple[str, ...] = ("C01", "C02"), workers: int = 4, chunk: int = 25
) -> list[str]:
    """``ready_patients`` split over forked processes (on PostgreSQL the preparation is
    dominated by round trips, which overlap across connections)."""
    import multiprocessing as mp

    from reluth.db.engine import make_engine

    eng = make_engine(url)
    ready_patients(eng, 0, centres=centres)  # the centres, once
    eng.dispose()
    jobs = [(url, min(chunk, n - s), s, centres) for s in range(0, n, chunk)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.starmap(_prepare_chunk, jobs)
    return [code for part in parts for code in part]
