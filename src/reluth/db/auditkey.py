"""The audit chain's HMAC-SHA-256 key, held outside the database.

The key comes from ``RELUTH_AUDIT_KEY`` (the secret itself, e.g. from a secrets manager) or
from a key file (``RELUTH_AUDIT_KEY_FILE``, default ``<data dir>/audit.key``, created by
``reluth db init``). A program that manages its own database (the demo, a test) binds a key to
its engine with :func:`bind`. Without the key nobody can extend or rewrite the chain so that
it verifies (RFC 2104 HMAC; FIPS 180-4 SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine

from reluth.config import Settings
from reluth.errors import NotConfigured
from reluth.keyfiles import check_secret, missing_key, read_secret

_KEY_ID_LABEL = b"reluth audit key id"


@dataclass(frozen=True)
class AuditKey:
    """An HMAC key; ``key_id`` names it without revealing it (a keyed hash of a fixed label),
    so a database can refuse a writer holding another key."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", check_secret(self.secret, "audit key"))

    @property
    def key_id(self) -> str:
        return hmac.new(self.secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def mac(self, payload: bytes) -> str:
        return hmac.digest(self.secret, payload, "sha256").hex()


def read_key_file(path: Path, setting: str = "--key-file") -> AuditKey:
    return AuditKey(read_secret(path, setting))


@lru_cache(maxsize=8)
def _secret_key(secret: str) -> AuditKey:
    return AuditKey(secret.encode("utf-8"))


@lru_cache(maxsize=8)
def _cached_file_key(path: str, _mtime_ns: int, _size: int) -> AuditKey:
    return read_key_file(Path(path), "RELUTH_AUDIT_KEY_FILE")


def configured_key(settings: Settings | None = None) -> AuditKey | None:
    """The key the settings name: ``RELUTH_AUDIT_KEY``, else the key file if it exists."""
    if settings is None:
        secret = os.environ.get("RELUTH_AUDIT_KEY")
        if secret:  # read at every commit: the environment's secret itself, without the rest
            return _secret_key(secret)
        settings = Settings.from_env()
    if settings.audit_key:
        return AuditKey(settings.audit_key.encode("utf-8"))
    path = settings.audit_key_path
    try:
        stat = path.stat()
    except FileNotFoundError:
        if settings.audit_key_file is not None:  # named explicitly: it must exist
            raise missing_key("RELUTH_AUDIT_KEY_FILE", path) from None
        return None
    return _cached_file_key(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


_BOUND: weakref.WeakKeyDictionary[Engine, AuditKey] = weakref.WeakKeyDictionary()


def bind(engine: Engine, key: AuditKey) -> None:
    """Use ``key`` for every audit row written through ``engine`` (and to verify its chain)."""
    _BOUND[engine] = key


NO_KEY = (
    "no audit key: set RELUTH_AUDIT_KEY_FILE (or RELUTH_AUDIT_KEY), or run `reluth db init`, "
    "which creates <data dir>/audit.key"
)


def key_for(engine: Engine) -> AuditKey:
    """The key bound to ``engine``, else the configured one; NotConfigured without either."""
    key = _BOUND.get(engine) or configured_key()
    if key is None:
        raise NotConfigured(NO_KEY)
    return key
