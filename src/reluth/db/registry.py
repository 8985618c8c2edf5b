"""Imports every domain's models so that ``Base.metadata`` knows all tables (for migrations)."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from reluth.db.base import Base

MODEL_MODULES = (
    "reluth.db.audit",
    "reluth.sites.models",
    "reluth.auth.models",
    "reluth.patients.models",
    "reluth.treatment.models",
    "reluth.safety.models",
    "reluth.response.models",
    "reluth.qol.models",
    "reluth.randomization.models",
    "reluth.queries.models",
    "reluth.imaging.models",
    "reluth.dosimetry.models",
    "reluth.forms.models",
)


def load_all_models() -> MetaData:
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
