"""Central side: ingest de-identified files into a content-addressed store (SHA-256) and a
catalogue in the trial database (patient pseudonym, cycle, time point, series, QC status).

Re-ingesting the same files changes nothing. A file that fails de-identification verification
is refused (never stored). One transaction for the catalogue of a whole ingest.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from reluth.auth.policy import Action, Resource
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.imaging.batch import iter_files, read_dataset, write_exclusive
from reluth.imaging.deid import DeidError
from reluth.imaging.models import ImagingInstance, ImagingSeries
from reluth.imaging.qc import QCConfig, SeriesHeader, check_all, extract_header
from reluth.imaging.verify import verify_dataset


@dataclass
class IngestReport:
    stored: int = 0
    already_present: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    series: list[dict[str, object]] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def store_path(store: Path, digest: str) -> Path:
    return store / digest[:2] / digest[2:4] / digest


def _put(store: Path, digest: str, source: Path) -> bool:
    """Copy into the store under its hash; False if already there. Atomic (temp + link)."""
    target = store_path(store, digest)
    if target.exists():
        return False

    def copy(fh: BinaryIO) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, fh, 1 << 20)

    return write_exclusive(target, copy, 0o444)


def _cycle(time_point_id: str) -> int | None:
    m = re.fullmatch(r"C(\d+)", time_point_id.strip().upper())
    return int(m.group(1)) if m else None


@service(Action.WRITE, Resource.IMAGING)
def ingest(
    ctx: Ctx,
    in_dir: Path,
    store: Path,
    cfg: QCConfig | None = None,
    on_file: Callable[[], None] | None = None,
) -> IngestReport:
    """Catalogue verified files through the audited write door (the context's unit of work,
    which carries the re-ingest reason); a re-ingest that changes a series' QC is recorded in
    the audit trail."""
    cfg = cfg or QCConfig()
    src = Path(in_dir)
    if not src.is_dir():
        raise invalid(
            "DIR",
            "not_a_directory",
            N_("not a directory: {path}"),
            N_("a folder of de-identified DICOM"),
            path=str(in_dir),
        )
    now = ctx.now()
    report = IngestReport()
    accepted: dict[str, list[tuple[str, str, Path, int]]] = defaultdict(list)
    headers: dict[str, SeriesHeader] = {}
    for path in iter_files(src):
        if on_file:
            on_file()
        rel = str(path.relative_to(src))
        try:
            ds = read_dataset(path)
        except DeidError as exc:
            report.refused.append((rel, f"unreadable: {exc}"))
            continue
        problems, _, _, _ = verify_dataset(ds)
        if problems:
            where, what = problems[0]
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            report.refused.append((rel, f"not de-identified: {where} {what}{more}"))
            continue
        series_uid = str(ds.get("SeriesInstanceUID", ""))
        sop = str(ds.get("SOPInstanceUID", ""))
        if not series_uid or not sop:
            report.refused.append((rel, "no series or SOP instance UID"))
            continue
        accepted[series_uid].append((sha256_file(path), sop, path, path.stat().st_size))
        if series_uid not in headers:
            headers[series_uid] = extract_header(ds)
    for uid, files in accepted.items():
        h = headers[uid]
        headers[uid] = SeriesHeader(**{**h.__dict__, "instances": len(files)})
    results = check_all(list(headers.values()), cfg)
    session = ctx.session
    if ctx.uow is not None and ctx.uow.reason is None:
        ctx.uow.reason = "imaging re-ingest: catalogue and QC updated"
    for qc in results:
        h = headers[qc.series_uid]
        row = session.scalars(
            select(ImagingSeries).where(ImagingSeries.series_uid == qc.series_uid)
        ).one_or_none()
        if row is None:
            row = ImagingSeries(series_uid=qc.series_uid, ingested_at=now, instances=0)
            session.add(row)
        row.study_uid = qc.study_uid
        row.patient_pseudonym = qc.patient_id
        row.cycle = _cycle(h.time_point_id)
        row.time_point = qc.time_point
        row.interval_h = None if qc.interval_h is None else f"{qc.interval_h:.2f}"
        row.modality = qc.modality
        row.qc_status = qc.status
        row.qc_reasons = "; ".join(qc.reasons)
        session.flush()
        for digest, sop, path, size in accepted[qc.series_uid]:
            known = session.get(ImagingInstance, digest)
            if known is not None:
                report.already_present += 1
                continue
            clash = session.scalars(
                select(ImagingInstance).where(ImagingInstance.sop_instance_uid == sop)
            ).one_or_none()
            if clash is not None:
                report.refused.append(
                    (
                        str(path.relative_to(src)),
                        "SOP Instance UID already stored with other content",
                    )
                )
                continue
            _put(store, digest, path)
            session.add(
                ImagingInstance(
                    sha256=digest,
                    sop_instance_uid=sop,
                    series_id=row.id,
                    size_bytes=size,
                    ingested_at=now,
                )
            )
            report.stored += 1
        session.flush()
        row.instances = len(
            session.scalars(
                select(ImagingInstance.sha256).where(ImagingInstance.series_id == row.id)
            ).all()
        )
        report.series.append(
            {
                "patient": row.patient_pseudonym,
                "cycle": row.cycle,
                "time_point": row.time_point,
                "modality": row.modality,
                "series_uid": row.series_uid,
                "instances": row.instances,
                "qc_status": row.qc_status,
                "qc_reasons": row.qc_reasons,
            }
        )
    return report


@service(Action.READ, Resource.IMAGING)
def patients_with_cycle(ctx: Ctx, cycle: int) -> list[str]:
    """The pseudonyms of the patients with catalogued SPECT (NM) series of ``cycle``."""
    rows = ctx.session.scalars(
        select(ImagingSeries.patient_pseudonym).where(
            ImagingSeries.cycle == cycle, ImagingSeries.modality == "NM"
        )
    )
    return sorted(set(rows))


@service(Action.READ, Resource.IMAGING)
def catalogue(ctx: Ctx) -> list[dict[str, object]]:
    session = ctx.session
    rows = session.scalars(
        select(ImagingSeries).order_by(
            ImagingSeries.patient_pseudonym, ImagingSeries.cycle, ImagingSeries.time_point
        )
    ).all()
    out: list[dict[str, object]] = [
        {
            "patient": r.patient_pseudonym,
            "cycle": r.cycle,
            "time_point": r.time_point,
            "modality": r.modality,
            "series_uid": r.series_uid,
            "instances": r.instances,
            "qc_status": r.qc_status,
        }
        for r in rows
    ]
    return out
