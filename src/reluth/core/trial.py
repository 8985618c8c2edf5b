"""The trial a service works for: its protocol, its clock and its settings, passed in.

Nothing looks the protocol up as a global: a second trial, or a test with an amended protocol,
runs side by side with its own :class:`Trial`. "Today" is the date at the trial's sites (the
protocol's ``safety.site_timezone``), so a date typed at a French site at 00:30 is not refused as
being in the future by a server running on UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from reluth.config import Settings
from reluth.protocol.definition import Protocol, load_protocol

if TYPE_CHECKING:
    from reluth.forms.registry import Registry


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Trial:
    """Protocol, clock and settings of one trial."""

    protocol: Protocol
    clock: Callable[[], dt.datetime] = utc_now
    settings: Settings = field(default_factory=Settings.from_env)

    @classmethod
    def default(cls, clock: Callable[[], dt.datetime] | None = None) -> Trial:
        """Settings from the environment, their protocol file (``RELUTH_PROTOCOL``; else the
        shipped ``reluth.yaml``) and the system clock."""
        settings = Settings.from_env()
        return cls(load_protocol(settings.protocol_file), clock or utc_now, settings)

    @property
    def forms(self) -> Registry:
        """The case report forms of this protocol: ``forms.yaml`` beside its file (else the
        shipped one), checked to be written for this protocol's id and version."""

        # imported here: a command that needs only the protocol (eligibility) does not build
        # the registry's models (start-up, issue 20)
        from reluth.forms.registry import check_protocol, forms_path_for, load_registry

        def make() -> Registry:
            registry = load_registry(forms_path_for(self.settings.protocol_file))
            check_protocol(registry, self.protocol.id, self.protocol.version)
            return registry

        found: Registry = self.protocol.memo(("forms", str(self.settings.protocol_file)), make)
        return found

    @property
    def zone(self) -> ZoneInfo:
        return self.protocol.safety.zone

    def now(self) -> dt.datetime:
        """The current moment, timezone-aware (UTC)."""
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the trial clock must return timezone-aware datetimes")
        return moment.astimezone(dt.UTC)

    def today(self) -> dt.date:
        """Today's date at the trial's sites."""
        return self.now().astimezone(self.zone).date()

    def at(self, moment: dt.datetime) -> Trial:
        """The same trial with the clock stopped at ``moment`` (tests, replays, imports)."""
        return replace(self, clock=lambda: moment)

    def on(self, day: dt.date) -> Trial:
        """The same trial with the clock stopped at noon, site time, of ``day``."""
        return self.at(dt.datetime.combine(day, dt.time(12), self.zone).astimezone(dt.UTC))
