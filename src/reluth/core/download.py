"""A file handed out (an export), with what the audit trail records about it, and the sealing
of the export event into the audit trail (ICH E6(R3) 4.2: who exported what, when, and the
SHA-256 of the file). Light on imports: the ODM export and the analysis exports share it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from reluth.core.context import Ctx

#: The audit trail's table name for export events (no data table of that name exists).
AUDIT_TABLE = "exports"


@dataclass(frozen=True)
class Download:
    """A file to hand out, with what the audit trail records about it."""

    filename: str
    media_type: str
    content: bytes
    what: str  # the audit record id: "adam-datasets" | "randomization-report" | "odm-export"
    detail: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def record_download(ctx: Ctx, download: Download) -> None:
    """Seal the export into the audit trail: who (the context's actor), when, what."""
    ctx.record_event(
        "export",
        AUDIT_TABLE,
        download.what,
        {**download.detail, "file": download.filename, "sha256": download.sha256},
    )
