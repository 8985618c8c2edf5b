"""Sealing the allocation list: each slot's arm and block encrypted with AES-256-GCM (NIST SP
800-38D) under a key held by the randomization service's configuration, not by the database.

The key is derived with HKDF-SHA-256 (RFC 5869) from the secret of ``RELUTH_ALLOCATION_KEY`` or
of the key file (``RELUTH_ALLOCATION_KEY_FILE``, default ``<data dir>/allocation.key``, created
by ``reluth db init``). Each slot is bound to its place (list, stratum, position) as associated
data, so a sealed slot copied to another position does not open. A database dump alone does not
reveal upcoming arms.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reluth.config import Settings
from reluth.errors import NotConfigured
from reluth.keyfiles import check_secret, missing_key, read_secret

_INFO = b"reluth allocation list v1"
_NONCE = 12


class SealBroken(Exception):
    """A sealed slot does not open: another key, or the slot was altered or moved."""


@dataclass(frozen=True)
class AllocationKey:
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", check_secret(self.secret, "allocation key"))

    def _aead(self) -> AESGCM:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            self.secret
        )
        return AESGCM(derived)

    def sealer(self) -> Sealer:
        return Sealer(self._aead())


class Sealer:
    """Seals and opens many slots with one derived key."""

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead

    def seal(self, content: dict[str, Any], place: str) -> str:
        nonce = os.urandom(_NONCE)
        plain = json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plain, place.encode())).decode()

    def open(self, sealed: str, place: str) -> dict[str, Any]:
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], place.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealBroken(place) from exc
        content: dict[str, Any] = json.loads(plain)
        return content


def slot_place(list_id: int, stratum_key: str, position: int) -> str:
    """The associated data binding a sealed slot to its list, stratum and position."""
    return f"{list_id}|{stratum_key}|{position}"


def configured_key(settings: Settings) -> AllocationKey | None:
    """The allocation key the settings name, or None when none is configured."""
    if settings.allocation_key:
        return AllocationKey(settings.allocation_key.encode("utf-8"))
    path: Path = settings.allocation_key_path
    if not path.exists():
        if settings.allocation_key_file is not None:
            raise missing_key("RELUTH_ALLOCATION_KEY_FILE", path)
        return None
    return AllocationKey(read_secret(path, "RELUTH_ALLOCATION_KEY_FILE"))


NO_KEY = (
    "no allocation key: set RELUTH_ALLOCATION_KEY_FILE (or RELUTH_ALLOCATION_KEY) in the "
    "randomization service's configuration, or run `reluth db init`, which creates "
    "<data dir>/allocation.key"
)


def require_key(settings: Settings) -> AllocationKey:
    key = configured_key(settings)
    if key is None:
        raise NotConfigured(NO_KEY)
    return key
