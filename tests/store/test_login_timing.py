"""Login abuse without account enumeration by timing (issue 13, item 7): the response times of
an unknown user, a wrong password and a throttled attempt come from the same distribution.

Compared as distributions, not against a wall-clock threshold: the three kinds of attempt are
interleaved in a random order (machine load hits them alike) and every pair is compared with a
two-sample Kolmogorov–Smirnov test. The password hash is cheap in tests (conftest), so what
would differ — database reads and writes of the throttle rows, the audit event of a lock — is
the larger part of each attempt, which makes the test stricter than production."""

from __future__ import annotations

import datetime as dt
import random
import time
from itertools import combinations

import pytest
from scipy.stats import ks_2samp
from sqlalchemy import Engine
from tests.store.storekit import ADMIN, add_users, work

from reluth.auth import service as auth
from reluth.auth.models import LoginThrottle
from reluth.auth.roles import Role
from reluth.db.session import exempt_transaction
from reluth.errors import ReluthError

N = 60
NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
PASSWORD = "right-password-0001"


def _attempt(engine: Engine, username: str, password: str, address: str, k: int = 0) -> float:
    started = time.perf_counter()
    with pytest.raises(ReluthError) as refused:
        auth.password_login(engine, NOW + dt.timedelta(seconds=k), username, password, address)
    elapsed = time.perf_counter() - started
    assert refused.value.message == auth.LoginFailed().message
    return elapsed


def test_unknown_wrong_and_throttled_cannot_be_told_apart_by_time(engine: Engine) -> None:
    add_users(engine)
    with work(engine, ADMIN) as ctx:
        for i in range(N + 1):
            auth.create_user(ctx, f"known{i:03d}", Role.DATA_MANAGER, PASSWORD)
    # The throttled account: its pair (account, address) blocked by wrong passwords, for the
    # longest delay (as after many of them; longer than the test's clock runs, 1 s per attempt).
    for _ in range(auth.THROTTLE_FREE["pair"] + 1):
        _attempt(engine, f"known{N:03d}", "wrong-password", "10.9.9.9")
    with exempt_transaction(engine) as session:
        row = session.get(LoginThrottle, f"pair:known{N:03d}|10.9.9.9")
        assert row is not None and row.blocked_until is not None
        row.blocked_until = NOW + auth.THROTTLE_MAX_DELAY
    kinds = ["unknown"] * N + ["wrong"] * N + ["throttled"] * N
    random.Random(13).shuffle(kinds)
    times: dict[str, list[float]] = {"unknown": [], "wrong": [], "throttled": []}
    counters = {"unknown": 0, "wrong": 0}
    for k, kind in enumerate(kinds):
        address = f"10.0.{k // 250}.{k % 250}"  # a fresh address: only the pair key decides
        if kind == "unknown":
            name = f"nobody{counters['unknown']:03d}"
        elif kind == "wrong":
            name = f"known{counters['wrong']:03d}"
        if kind in counters:
            counters[kind] += 1
            times[kind].append(_attempt(engine, name, "wrong-password", address, k))
        else:  # the right password, throttled: refused like the others
            times[kind].append(_attempt(engine, f"known{N:03d}", PASSWORD, "10.9.9.9", k))
    for a, b in combinations(times, 2):
        result = ks_2samp(times[a], times[b])
        assert result.pvalue > 0.001, (a, b, result, _medians(times))


def _medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(sorted(v)[len(v) // 2] * 1000, 3) for k, v in times.items()}
