"""Services of the ODM exchange: the export as a download (built with SELECTs only, then sealed
into the audit trail as an export by the adapter's unit of work, as the statistician's
exports are, by ``reluth.core.download.record_download``), and the import of another EDC's ODM clinical data.

The export is declared for ``read patient`` and holds what the actor may read
(:class:`reluth.odm.export.Scope`). The import (``odm import``: the roles that enter a form)
writes every record through its domain's own service as the authenticated actor — the same checks as entry by hand — in the caller's one
transaction: a refused record refuses the whole file (no partial writes).
"""

from __future__ import annotations

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.download import Download
from reluth.core.service import service
from reluth.odm import export, mapping
from reluth.odm.importer import ImportReport, apply, parse

MEDIA_TYPE = "application/xml"
#: The audit trail's table name for ODM imports (no data table of that name); an export is
#: recorded as the other exports are (``reluth.core.download.record_download``).
AUDIT_TABLE = "imports"


@service(Action.READ, Resource.PATIENT)
def odm_export(ctx: Ctx, audit: bool = True) -> Download:
    """The ODM 1.3.2 document of every patient the actor may read (``audit`` False: data
    only, no audit records)."""
    content, detail = export.document(ctx, audit)
    stamp = ctx.today().isoformat()
    return Download(
        filename=f"reluth-odm-{stamp}{'' if audit else '-data-only'}.xml",
        media_type=MEDIA_TYPE,
        content=content,
        what="odm-export",
        detail=detail,
    )


@service(Action.WRITE, Resource.ODM_IMPORT)
def odm_import(
    ctx: Ctx, content: bytes, dry_run: bool = False, oid_map: bytes | None = None
) -> ImportReport:
    """Import the ClinicalData of an ODM 1.3.2 file through the domain services, each record
    audited with the reason "imported from ODM <FileOID>" and the import itself as an audit
    event. Each form asks its own service's permission: the actor imports the forms their role
    enters, the others are counted as left for another role. ``oid_map``: the YAML map of
    another EDC's OIDs (:mod:`reluth.odm.mapping`). ``dry_run``: the same checks, then the
    caller rolls back (nothing is written)."""
    doc = parse(content, None if oid_map is None else mapping.load(oid_map))
    report = apply(ctx, doc, dry_run)
    if not dry_run:
        ctx.record_event("import", AUDIT_TABLE, doc.file_oid, report.detail())
    return report
