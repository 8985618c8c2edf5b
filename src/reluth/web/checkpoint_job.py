"""The web app's daily audit checkpoint: a background thread that, every hour, writes today's
signed checkpoint if no worker has yet (:func:`reluth.core.integrity.daily_checkpoint`). A
database lock anchors itself through :func:`reluth.core.integrity.after_database_lock`."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from reluth.config import Settings
from reluth.core import integrity

log = logging.getLogger("reluth.checkpoints")


class DailyCheckpoints:
    """Runs :func:`integrity.daily_checkpoint` now and then every ``interval`` seconds."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Callable[[], dt.datetime],
        interval: float = 3600.0,
    ) -> None:
        self.engine, self.settings, self.clock, self.interval = engine, settings, clock, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="daily-checkpoint", daemon=True)
        self.written: list[Path] = []

    def run_once(self) -> Path | None:
        try:
            path = integrity.daily_checkpoint(self.engine, self.settings, self.clock())
        except Exception:  # a failed checkpoint must not stop the server; it is retried
            log.exception("daily audit checkpoint failed (retried within the hour)")
            return None
        if path is not None:
            self.written.append(path)
            log.info("audit checkpoint written to %s", path)
        return path

    def _loop(self) -> None:
        self.run_once()  # at start-up, then each interval until stopped
        while not self._stop.wait(self.interval):
            self.run_once()

    def start(self) -> DailyCheckpoints:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def enabled(settings: Settings) -> bool:
    """Daily checkpoints run when a signing key is configured (RELUTH_CHECKPOINT_KEY_FILE) and
    always in production, where a missing key is refused at start-up."""
    return settings.production or settings.checkpoint_key_file is not None
