"""Settings read from environment variables, in one object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_DATA_DIR = Path("reluth-data")


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    production: bool
    secret_key: str | None
    image_store: Path = DEFAULT_DATA_DIR / "image-store"
    calibrations: Path | None = None  # the centres' camera calibrations (YAML)
    #: another protocol file than the shipped ``reluth.yaml`` (an amendment, a test copy)
    protocol_file: Path | None = None
    #: the audit chain's HMAC key itself (``RELUTH_AUDIT_KEY``), else read from a file
    audit_key: str | None = None
    audit_key_file: Path | None = None
    #: the key that encrypts the allocation list (``RELUTH_ALLOCATION_KEY``), else a file
    allocation_key: str | None = None
    allocation_key_file: Path | None = None
    #: where signed audit checkpoints are written, and the Ed25519 key that signs them
    checkpoint_dir: Path | None = None
    checkpoint_key_file: Path | None = None
    #: the checkpoint signer's public key as the verifier trusts it (PEM file)
    checkpoint_public_key: Path | None = None
    #: e-mail: the SMTP server (smtp:// or smtps://, user and password in the URL), the sender
    #: address, and pharmacovigilance's mailbox (besides its users' own addresses)
    smtp_url: str | None = None
    smtp_from: str = "reluth@localhost"
    pv_email: str | None = None
    #: the trial's language (``RELUTH_LANGUAGE``: en, fr) for e-mails to an account that has
    #: chosen none and to a mailbox with no account
    language: str = "en"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (default: this process's environment, read each call,
        the object built once per distinct set of ``RELUTH_*`` values: every audited commit
        asks for its key)."""
        if environ is None:
            named = tuple(sorted(kv for kv in os.environ.items() if kv[0].startswith("RELUTH_")))
            return _from_process_env(named)
        return cls._build(environ)

    @classmethod
    def _build(cls, env: Mapping[str, str]) -> Settings:
        data_dir = Path(env.get("RELUTH_DATA_DIR", str(DEFAULT_DATA_DIR)))
        url = env.get("RELUTH_DATABASE_URL") or f"sqlite:///{data_dir / 'reluth.db'}"
        production = env.get("RELUTH_ENV", "development").lower() == "production"

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        return cls(
            database_url=url,
            data_dir=data_dir,
            production=production,
            secret_key=env.get("RELUTH_SECRET_KEY"),
            image_store=Path(env.get("RELUTH_IMAGE_STORE", str(data_dir / "image-store"))),
            calibrations=path("RELUTH_CALIBRATIONS"),
            audit_key=env.get("RELUTH_AUDIT_KEY") or None,
            audit_key_file=path("RELUTH_AUDIT_KEY_FILE"),
            allocation_key=env.get("RELUTH_ALLOCATION_KEY") or None,
            allocation_key_file=path("RELUTH_ALLOCATION_KEY_FILE"),
            checkpoint_dir=path("RELUTH_CHECKPOINT_DIR"),
            checkpoint_key_file=path("RELUTH_CHECKPOINT_KEY_FILE"),
            checkpoint_public_key=path("RELUTH_CHECKPOINT_PUBLIC_KEY"),
            protocol_file=path("RELUTH_PROTOCOL"),
            smtp_url=env.get("RELUTH_SMTP_URL") or None,
            smtp_from=env.get("RELUTH_SMTP_FROM") or "reluth@localhost",
            pv_email=env.get("RELUTH_PV_EMAIL") or None,
            language=env.get("RELUTH_LANGUAGE") or "en",
        )

    # Paths of the keys and checkpoints: the configured one, else in the data directory.

    @property
    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit.key"

    @property
    def allocation_key_path(self) -> Path:
        return self.allocation_key_file or self.data_dir / "allocation.key"

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def checkpoint_key_path(self) -> Path:
        return self.checkpoint_key_file or self.data_dir / "checkpoint-signing.key"


def get_settings() -> Settings:
    return Settings.from_env()


@lru_cache(maxsize=16)
def _from_process_env(named: tuple[tuple[str, str], ...]) -> Settings:
    return Settings._build(dict(named))
