"""Checkpoints the product writes by itself: the web app's daily one (once per day, whichever
worker), the one a database lock calls for, and the refusal to serve in production without a
signing key."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from storekit import add_users

from reluth.config import Settings
from reluth.core import integrity
from reluth.db import checkpoint
from reluth.errors import NotConfigured

NOON = dt.datetime(2025, 3, 5, 12, tzinfo=dt.UTC)


def _settings(tmp_path: Path) -> Settings:
    key = tmp_path / "signing.key"
    if not key.exists():
        checkpoint.create_signing_key(key)
    return Settings.from_env(
        {
            "RELUTH_DATA_DIR": str(tmp_path),
            "RELUTH_CHECKPOINT_KEY_FILE": str(key),
            "RELUTH_CHECKPOINT_DIR": str(tmp_path / "cp"),
        }
    )


def _bodies(directory: Path) -> list[dict[str, object]]:
    return [
        json.loads(p.read_text())["checkpoint"] for p in sorted(directory.glob("checkpoint-*.json"))
    ]


def test_the_daily_checkpoint_is_written_once_a_day(engine: Engine, tmp_path: Path) -> None:
    add_users(engine)
    settings = _settings(tmp_path)
    first = integrity.daily_checkpoint(engine, settings, NOON)
    assert first is not None
    assert integrity.daily_checkpoint(engine, settings, NOON + dt.timedelta(hours=5)) is None
    assert integrity.daily_checkpoint(engine, settings, NOON + dt.timedelta(days=1)) is not None
    bodies = _bodies(tmp_path / "cp")
    assert [b["reason"] for b in bodies] == ["daily", "daily"]
    assert bodies[0]["tables"]["users"] == 4  # type: ignore[index]


def test_the_lock_hook_writes_a_checkpoint_of_the_locked_database(
    engine: Engine, tmp_path: Path
) -> None:
    add_users(engine)
    path = integrity.after_database_lock(engine, _settings(tmp_path), NOON)
    (body,) = _bodies(path.parent)
    assert body["reason"] == "database lock" and body["head_seq"] > 0  # type: ignore[operator]
    missing = Settings.from_env({"RELUTH_CHECKPOINT_KEY_FILE": str(tmp_path / "none.key")})
    with pytest.raises(NotConfigured, match="signing key not found"):
        integrity.after_database_lock(engine, missing, NOON)


def test_the_web_app_writes_the_daily_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reluth.web.app import create_app

    settings = _settings(tmp_path)
    monkeypatch.setenv("RELUTH_CHECKPOINT_KEY_FILE", str(settings.checkpoint_key_path))
    monkeypatch.setenv("RELUTH_CHECKPOINT_DIR", str(settings.checkpoint_path))
    app = create_app(f"sqlite:///{tmp_path / 'web.db'}", clock=lambda: NOON)
    job = app.state.checkpoints
    assert job is not None
    job.stop()
    job._thread.join(timeout=60)  # its first round ran at start-up
    assert job.run_once() is None  # today's is written
    assert len(_bodies(settings.checkpoint_path)) == 1
    app.state.engine.dispose()


def test_production_refuses_to_serve_without_a_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reluth.web.app import create_app

    monkeypatch.setenv("RELUTH_ENV", "production")
    monkeypatch.setenv("RELUTH_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("RELUTH_DATA_DIR", str(tmp_path))
    with pytest.raises(NotConfigured, match="signing key"):
        create_app(f"sqlite:///{tmp_path / 'web.db'}")
