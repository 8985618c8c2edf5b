"""Secret key files kept outside the database (the audit chain's HMAC key, the allocation
list's encryption key): at least 32 bytes of secret text, created readable by their owner only.

The format is the de-identifier's site key (``head -c 48 /dev/urandom | base64 > FILE``): the
file's bytes, stripped of surrounding white space, are the secret.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from reluth.errors import NotConfigured, ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Word, refusal

MIN_SECRET_BYTES = 32


def check_secret(secret: bytes, where: str) -> bytes:
    """``secret`` stripped, refused (naming ``where``) if shorter than 32 bytes."""
    secret = secret.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValidationError(
            where,
            f"the key holds {len(secret)} bytes",
            f"at least {MIN_SECRET_BYTES} bytes of secret (e.g. "
            "`head -c 48 /dev/urandom | base64 > FILE`)",
            code="key_too_short",
            params={"length": len(secret), "limit": MIN_SECRET_BYTES},
        )
    return secret


def missing_key(setting: str, path: Path, what: str = N_("key file")) -> NotConfigured:
    """A key file named by ``setting`` is not at ``path``: how to make one."""
    return refusal(
        NotConfigured,
        "key_file_missing",
        N_("{setting}: {what} not found: {path} (create it with `reluth db init`)"),
        setting=setting,
        what=Word(what),
        path=str(path),
    )


def read_secret(path: Path, setting: str) -> bytes:
    """The secret in ``path``; a missing file is NotConfigured naming ``setting``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise missing_key(setting, path) from None
    except OSError as exc:
        raise refusal(
            NotConfigured,
            "key_file_unreadable",
            N_("{setting}: cannot read key file {path}: {problem}"),
            setting=setting,
            path=str(path),
            problem=str(exc),
        ) from None
    return check_secret(data, f"{setting} ({path})")


def create_secret_file(path: Path) -> bytes:
    """Write a new random secret (48 bytes, base64) to ``path``, mode 0600; refused if the file
    exists (a key is never replaced: what it sealed would no longer verify)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = base64.b64encode(secrets.token_bytes(48))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text + b"\n")
    return text
