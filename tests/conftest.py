"""Shared fixtures. Database tests run on SQLite always and on PostgreSQL when
RELUTH_TEST_POSTGRES_URL is set; under CI=true a missing or unreachable PostgreSQL fails
the run instead of skipping those tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_ambient_login(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test sees the developer's own `reluth login` or RELUTH_TOKEN: each starts logged out,
    with its own config directory."""
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path_factory.mktemp("reluth-config")))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)


#: The keys every test writes and verifies with (held outside the database, as in production).
TEST_AUDIT_KEY = "reluth-test-audit-key-0000000000000000"
TEST_ALLOCATION_KEY = "reluth-test-allocation-key-000000000000"


@pytest.fixture(autouse=True, scope="session")
def _test_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The audit chain's HMAC key and the allocation list's key, from the environment (as a
    deployment may give them), for the whole session (module fixtures write too); a test that
    needs another sets its own with ``monkeypatch``. The data directory (default database,
    checkpoints and their signing key) is the session's own, never ``reluth-data/`` in the
    checkout, so no test trusts a key another run left behind."""
    from reluth.db import checkpoint

    data = tmp_path_factory.mktemp("reluth-data")
    # the checkpoint signer `reluth db init` would create: a database lock needs it, and under
    # pytest-xdist no earlier test of the same worker may be relied on to have made it
    checkpoint.create_signing_key(data / "checkpoint-signing.key")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELUTH_DATA_DIR", str(data))
        mp.setenv("RELUTH_AUDIT_KEY", TEST_AUDIT_KEY)
        mp.setenv("RELUTH_ALLOCATION_KEY", TEST_ALLOCATION_KEY)
        yield


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id with small cost parameters so that creating and logging in test accounts stays
    fast on 2 cores; the production parameters are checked in
    tests/web/test_web_auth.py::test_production_hasher_is_argon2id_with_rfc9106_low_memory_parameters."""
    from argon2 import PasswordHasher

    from reluth.auth import service as auth

    saved = auth._HASHER
    auth._HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    auth._dummy_hash.cache_clear()
    yield
    auth._HASHER = saved
    auth._dummy_hash.cache_clear()


EXAMPLES = REPO / "examples"
SHARED = REPO.parent / "shared"


def _postgres_base() -> str | None:
    url = os.environ.get("RELUTH_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but RELUTH_TEST_POSTGRES_URL is not set: PostgreSQL tests must run"
            )
        return None
    return url


@contextmanager
def _fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """A URL to a new, empty database: a file under ``directory``, or a PostgreSQL database
    created for the caller and dropped afterwards (skipped when PostgreSQL is not set up)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'test.db'}"
        return
    base = _postgres_base()
    if base is None:
        pytest.skip("RELUTH_TEST_POSTGRES_URL not set")
    name = f"reluth_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - only when the server is down
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL unreachable at {base}: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database on each backend."""
    with _fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """As ``db_url``, one database per test module (for module-scoped fixtures)."""
    with _fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with slow or browser tests first (stable otherwise): pytest-xdist's loadscope
    hands out whole modules in collection order, so a long module collected last would run
    alone on one core at the end of the run."""

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    heavy = {
        module(item)
        for item in items
        if item.get_closest_marker("slow") is not None
        or item.get_closest_marker("browser") is not None
    }
    items.sort(key=lambda item: 0 if module(item) in heavy else 1)
