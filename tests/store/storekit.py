"""Helpers shared by the store tests (actors, database set-up)."""

from __future__ import annotations

from reluth.auth.roles import Role
from reluth.db.session import Actor

ADMIN = Actor("admin1", Role.ADMIN)
NURSE = Actor("nurse1", Role.RESEARCH_NURSE)
STAT = Actor("stat1", Role.STATISTICIAN)
