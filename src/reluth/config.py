"""Settings read from environment variables, in one object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("reluth-data")


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    production: bool
    secret_key: str | None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if environ is None else environ
        data_dir = Path(env.get("RELUTH_DATA_DIR", str(DEFAULT_DATA_DIR)))
        url = env.get("RELUTH_DATABASE_URL") or f"sqlite:///{data_dir / 'reluth.db'}"
        production = env.get("RELUTH_ENV", "development").lower() == "production"
        return cls(
            database_url=url,
            data_dir=data_dir,
            production=production,
            secret_key=env.get("RELUTH_SECRET_KEY"),
        )


def get_settings() -> Settings:
    return Settings.from_env()
