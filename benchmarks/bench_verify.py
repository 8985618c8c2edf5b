"""Wall time and peak memory of ``reluth audit verify`` with state replay: on the demo database,
and on synthetic audit trails of growing length on PostgreSQL (memory must not grow with them).

    .venv/bin/python benchmarks/bench_verify.py demo --out demo-output
    .venv/bin/python benchmarks/bench_verify.py synthetic --postgres URL --rows 250000 1000000

``demo`` verifies ``OUT/reluth-demo.db`` with the demo's own audit key, allocation key and
checkpoints. ``synthetic`` builds, per size, a fresh PostgreSQL database whose trail is written
by the product's own audited unit of work (patients, then laboratory results inserted in
batches of 5 000 and one in three corrected with a reason), then verifies it. Each verification
runs in a child process, which reports its wall time, its peak RSS (``ru_maxrss``) and the peak
of Python allocations during the verification (a second run under ``tracemalloc``, slower).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-verify-audit-key-0000000000000000"


def _verify(
    url: str,
    key_file: str | None,
    checkpoints: str | None,
    allocation: str | None,
    public_key: str | None,
    traced: bool,
) -> dict[str, Any]:
    from reluth import sealing
    from reluth.auth.actor import Actor
    from reluth.auth.roles import Role
    from reluth.core import integrity
    from reluth.core.context import reading
    from reluth.core.trial import Trial
    from reluth.db import auditkey
    from reluth.db.engine import make_engine
    from reluth.keyfiles import read_secret

    engine = make_engine(url)
    key = auditkey.read_key_file(Path(key_file)) if key_file else auditkey.AuditKey(KEY.encode())
    alloc = (
        sealing.AllocationKey(read_secret(Path(allocation), "allocation")) if allocation else None
    )
    stat = Actor("bench", Role.STATISTICIAN)
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    with reading(engine, stat, Trial.default()) as ctx:
        report = integrity.verify_store(
            ctx,
            key,
            Path(checkpoints) if checkpoints else None,
            Path(public_key) if public_key else None,
            True,
            alloc,
        )
    wall = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    engine.dispose()
    return {
        "ok": report.ok,
        "findings": len(report.findings),
        "rows": report.rows_checked,
        "records": report.records_replayed,
        "checkpoints": report.checkpoints_checked,
        "wall_s": wall,
        "python_peak_mib": None if peak is None else peak / 2**20,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # the chain walker on PostgreSQL (its peak includes what it inherited at fork)
        "worker_rss_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "not_done": report.not_done,
    }


def _child(queue: Any, args: tuple[Any, ...]) -> None:
    queue.put(_verify(*args))


def measure(*args: Any, traced_too: bool = True) -> dict[str, Any]:
    """One verification in a fresh process, then (``traced_too``) the same under tracemalloc
    for the peak of Python allocations (several times slower)."""
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {}
    for traced in (False, True) if traced_too else (False,):
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(queue, (*args, traced)))
        proc.start()
        result = queue.get()
        proc.join()
        if traced:
            out["python_peak_mib"] = result["python_peak_mib"]
            out["traced_wall_s"] = result["wall_s"]
        else:
            out.update(result)
    return out


def build_synthetic(url: str, rows: int, checkpoints: str) -> int:
    """A trail of ``rows`` audit rows: the centre and patients written by the product's unit of
    work; then laboratory results (three in four rows inserts, one in four corrections with a
    reason) sealed by this script exactly as the writer seals them (same snapshot format,
    :func:`reluth.db.audit.row_hash` under the key, chained on the head) and loaded with COPY,
    the chain guards switched off for the load; then a signed checkpoint into
    ``checkpoints``. Returns the rows written. The verification
    that follows then proves the load matches what the writer would have written: any
    difference would be a finding."""
    import os

    os.environ["RELUTH_AUDIT_KEY"] = KEY
    from reluth.auth.actor import Actor
    from reluth.auth.roles import Role
    from reluth.db import audit
    from reluth.db.auditkey import AuditKey
    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade
    from reluth.db.session import unit_of_work
    from reluth.patients.models import Patient
    from reluth.sites.models import Centre

    key = AuditKey(KEY.encode())
    engine = make_engine(url)
    upgrade(engine)
    nurse = Actor("bench-nurse", Role.RESEARCH_NURSE)
    with unit_of_work(engine, nurse) as uow:
        centre = Centre(code="C01", name="Bench")
        uow.session.add(centre)
        uow.flush()
        cid = centre.id
    patients = max(1, min(9999, rows // 100))
    with unit_of_work(engine, nurse) as uow:
        people = [
            Patient(patient_code=f"C01-{i + 1:04d}", centre_id=cid, protocol_version="RELUTH v1.0")
            for i in range(patients)
        ]
        uow.session.add_all(people)
        uow.flush()
        pids = [p.id for p in people]
    with engine.connect() as conn:
        seq, prev = conn.execute(select(audit.AuditHead.last_seq, audit.AuditHead.last_hash)).one()
    at = audit.utc_stamp(dt.datetime(2025, 3, 5, 10, tzinfo=dt.UTC))
    reason = "transcription error corrected from source"
    labs, trail = [], []
    lab_id = 0
    day = dt.date(2025, 1, 1)

    def seal(action: str, rid: str, field: str | None, old: Any, new: Any, why: str | None) -> None:
        nonlocal seq, prev
        seq += 1
        row = {
            "seq": seq,
            "at_utc": at,
            "username": nurse.username,
            "role": str(nurse.role),
            "auth_method": str(nurse.via),
            "action": action,
            "table_name": "lab_results",
            "record_id": rid,
            "field": field,
            "old_value": None if old is None else audit.json_value(old),
            "new_value": audit.json_value(new),
            "reason": why,
            "prev_hash": prev,
        }
        row["row_hash"] = prev = audit.row_hash(row, key)
        trail.append(row)

    while seq < rows:
        lab_id += 1
        value = Decimal(150000 + lab_id % 1000)
        lab = {
            "id": lab_id,
            "patient_id": pids[lab_id % len(pids)],
            "sample_date": day + dt.timedelta(days=lab_id % 300),
            "analyte": "platelets",
            "value": value,
            "unit": "/mm3",
            "value_canonical": Decimal(150 + lab_id % 1000),
            "canonical_unit": "10^9/L",
            "protocol_version": "RELUTH v1.0",
        }
        seal("insert", str(lab_id), None, None, lab, None)
        if lab_id % 3 == 0 and seq < rows:
            seal("update", str(lab_id), "value", value, value + 1, reason)
            lab = {**lab, "value": value + 1}
        labs.append(lab)
    columns = list(trail[0])
    lab_columns = list(labs[0])
    with engine.begin() as conn:
        for table in ("audit_log", "audit_head"):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        raw = conn.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            with cur.copy(f"COPY lab_results ({', '.join(lab_columns)}) FROM STDIN") as copy:
                for lab in labs:
                    copy.write_row([lab[c] for c in lab_columns])
            with cur.copy(f"COPY audit_log ({', '.join(columns)}) FROM STDIN") as copy:
                for row in trail:
                    copy.write_row([row[c] for c in columns])
        conn.execute(
            text("UPDATE audit_head SET last_seq = :s, last_hash = :h"), {"s": seq, "h": prev}
        )
        conn.execute(text("SELECT setval('lab_results_id_seq', :n)"), {"n": lab_id})
        for table in ("audit_log", "audit_head"):
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        conn.execute(text("ANALYZE"))
    from reluth.db import checkpoint

    signing = Path(checkpoints) / "signing.key"
    checkpoint.create_signing_key(signing)
    with engine.connect() as conn:  # the checkpoint the product would have written
        checkpoint.write(
            conn,
            Path(checkpoints),
            checkpoint.load_signing_key(signing),
            "bench",
            dt.datetime.now(dt.UTC),
        )
    engine.dispose()
    return seq


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    demo = sub.add_parser("demo")
    demo.add_argument("--out", type=Path, default=ROOT / "demo-output")
    syn = sub.add_parser("synthetic")
    syn.add_argument("--postgres", required=True)
    syn.add_argument("--rows", type=int, nargs="+", default=[250_000, 1_000_000])
    syn.add_argument("--traced", action="store_true", help="Also the tracemalloc peak (slow).")
    args = parser.parse_args()
    if args.what == "demo":
        out = args.out.resolve()
        result = measure(
            f"sqlite:///{out / 'reluth-demo.db'}",
            str(out / "audit.key"),
            str(out / "checkpoints"),
            str(out / "allocation.key"),
            str(out / "checkpoint-signing.pub"),
        )
        print(json.dumps(result, indent=1))
        return
    base = make_url(args.postgres)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    for rows in args.rows:
        name = f"reluth_bench_verify_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = base.set(database=name).render_as_string(hide_password=False)
        try:
            t0 = time.perf_counter()
            with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                # built in its own process: the verifier's memory starts from a small parent
                cps = tempfile.mkdtemp(prefix="bench-verify-cp-")
                written = pool.submit(build_synthetic, url, rows, cps).result()
            print(f"built {written} rows in {time.perf_counter() - t0:.0f} s", flush=True)
            public = str(Path(cps) / "signing.pub")
            result = measure(url, None, cps, None, public, traced_too=args.traced)
            print(json.dumps({"target_rows": rows, **result}, indent=1), flush=True)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
