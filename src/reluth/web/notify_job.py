"""The web app's mailer: a background thread that drains the e-mail outbox every ``interval``
seconds (20 by default, so an SAE reaches pharmacovigilance within a minute) when
``RELUTH_SMTP_URL`` is set. It acts as the system account ``system-mailer`` (role admin, no
login), which the audit trail names on every delivery attempt."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from reluth.auth.actor import Actor, AuthMethod
from reluth.auth.roles import Role
from reluth.core.context import writing
from reluth.core.trial import Trial
from reluth.notify import service as notify

log = logging.getLogger("reluth.mailer")
MAILER = Actor("system-mailer", Role.ADMIN, via=AuthMethod.SYSTEM)


class Drain:
    def __init__(self, engine: Engine, trial: Trial, interval: float = 20.0) -> None:
        self.engine, self.trial, self.interval = engine, trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mail-drain", daemon=True)

    def run_once(self) -> notify.Delivery | None:
        try:
            with writing(self.engine, MAILER, self.trial) as ctx:
                return notify.deliver(ctx)
        except Exception:  # a failed drain must not stop the server; the next one retries
            log.exception("e-mail drain failed (retried at the next interval)")
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def start(self) -> Drain:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
