"""What ``reluth audit verify`` proves, in one service: the keyed chain complete and gap-free,
its agreement with every signed checkpoint, the state of every audited table replayed from the
trail, and the allocation checks. Also the checkpoints themselves: on demand, daily from the web
app, and after a database lock.

Verification runs in one read transaction (REPEATABLE READ on PostgreSQL), so the chain, the
tables and the allocation list are compared as of one moment while the trial goes on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.pool import NullPool

from reluth import sealing
from reluth.auth.policy import Action, Resource
from reluth.config import Settings
from reluth.core.context import Ctx
from reluth.core.service import service
from reluth.db import checkpoint as checkpoints
from reluth.db.audit import ChainCheck, Finding, check_chain, count
from reluth.db.auditkey import AuditKey
from reluth.db.replay import ReplayStats, replay
from reluth.randomization.integrity import check_allocations


@dataclass
class IntegrityReport:
    """The verdict: ``ok`` when nothing was found; ``done``/``not_done`` say what was checked."""

    ok: bool
    findings: list[Finding]
    rows_checked: int
    head_seq: int | None
    last_seq: int
    last_hash: str
    checkpoints_checked: int = 0
    latest_checkpoint: str | None = None
    trusted_public_key: str | None = None
    records_replayed: int = 0
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _snapshot(engine: Engine, snapshot_id: str | None = None) -> Connection:
    """A read transaction on one snapshot: REPEATABLE READ on PostgreSQL (``snapshot_id``:
    another transaction's exported snapshot, so two processes see the same moment)."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()
    if snapshot_id is not None:
        if not re.fullmatch(r"[0-9A-Fa-f-]{1,64}", snapshot_id):
            raise ValueError(f"not a PostgreSQL snapshot id: {snapshot_id!r}")
        conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
    return conn


#: Above this many audit rows on PostgreSQL, the chain is walked in a second process while
#: this one replays the state (both on one exported snapshot): two cores, half the wall time.
PARALLEL_FROM = 100_000


def _chain_worker(
    url: str, snapshot_id: str, secret: bytes, cps: list[checkpoints.Checkpoint]
) -> tuple[ChainCheck, dict[int, tuple[str, dict[str, int]]]]:
    """The chain walk of :func:`verify_store` in a worker process, on the caller's snapshot."""
    from reluth.db.engine import make_engine

    engine = make_engine(url, poolclass=NullPool)
    marks = checkpoints.Marks(cps)
    conn = _snapshot(engine, snapshot_id)
    try:
        chain = check_chain(conn, AuditKey(secret), None, observe=marks if cps else None)
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()
    return chain, marks.seen


def trusted_public_key(
    settings: Settings, explicit: Path | None
) -> tuple[checkpoints.Ed25519PublicKey | None, str]:
    """The public key checkpoints are checked against: given, configured, or derived from the
    configured signing key; else None (the checkpoint directory's own copy is then used)."""
    for path in (explicit, settings.checkpoint_public_key):
        if path is not None:
            return checkpoints.load_public_key(path), str(path)
    if settings.checkpoint_key_path.exists():
        key = checkpoints.load_signing_key(settings.checkpoint_key_path).public_key()
        return key, f"{settings.checkpoint_key_path} (signing key)"
    return None, ""


@service(Action.READ, Resource.AUDIT_VERIFY)
def verify_store(
    ctx: Ctx,
    key: AuditKey,
    checkpoint_dir: Path | None,
    public_key: Path | None = None,
    state: bool = True,
    allocation_key: sealing.AllocationKey | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> IntegrityReport:
    """Every check of the audit trail and the allocation list; findings name table, record,
    audit row and field."""
    started = time.perf_counter()
    settings = ctx.trial.settings
    loaded = checkpoints.Loaded()
    done: list[str] = []
    not_done: list[str] = []
    if checkpoint_dir is not None and checkpoint_dir.is_dir():
        trusted, where = trusted_public_key(settings, public_key)
        loaded = checkpoints.load(checkpoint_dir, trusted, where)
    marks = checkpoints.Marks(loaded.checkpoints)
    engine = ctx.session.get_bind()
    assert isinstance(engine, Engine)
    conn = _snapshot(engine)
    pool: ProcessPoolExecutor | None = None
    try:
        if engine.dialect.name == "postgresql" and count(conn) >= PARALLEL_FROM:
            snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
            url = engine.url.render_as_string(hide_password=False)
            walk = pool.submit(_chain_worker, url, snapshot_id, key.secret, loaded.checkpoints)
        else:
            walk = None
            chain = check_chain(
                conn,
                key,
                (lambda n: progress("chain", n)) if progress else None,
                observe=marks if loaded.checkpoints else None,
            )
        stats = ReplayStats()
        state_findings: list[Finding] = []
        if state:
            state_findings = replay(
                conn, (lambda n: progress("state", n)) if progress else None, stats
            )
        alloc = check_allocations(conn, allocation_key)
        if walk is not None:
            chain, marks.seen = walk.result()
        findings = list(chain.findings) + loaded.findings
        done.append(f"chain of {chain.rows} rows: numbering, links, keyed hashes, head")
        if loaded.checkpoints:
            findings += checkpoints.check(loaded.checkpoints, marks, chain.last_seq, key.key_id)
            done.append(f"{len(loaded.checkpoints)} signed checkpoints")
        else:
            not_done.append(
                "no checkpoint"
                + (f" in {checkpoint_dir}" if checkpoint_dir else "")
                + ": rows removed from the end together with the head cannot be detected"
            )
        if state:
            findings += state_findings
            done.append(f"state of {stats.tables} tables replayed ({stats.records} records)")
        else:
            not_done.append("state replay (--no-state)")
        findings += alloc.findings
        done += alloc.done
        not_done += alloc.not_done
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        conn.rollback()
        conn.close()
    latest = loaded.checkpoints[-1] if loaded.checkpoints else None
    return IntegrityReport(
        ok=not findings,
        findings=findings,
        rows_checked=chain.rows,
        head_seq=chain.head_seq,
        last_seq=chain.last_seq,
        last_hash=chain.last_hash,
        checkpoints_checked=len(loaded.checkpoints),
        latest_checkpoint=None
        if latest is None
        else f"row {latest.head_seq} at {latest.at_utc} ({latest.path.name})",
        trusted_public_key=loaded.trusted_key,
        records_replayed=stats.records,
        done=done,
        not_done=not_done,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------ checkpoints


def write_checkpoint(
    engine: Engine, settings: Settings, reason: str, now: dt.datetime, directory: Path | None = None
) -> Path:
    """Sign and write a checkpoint with the configured signing key (the web app's daily one,
    the one after a database lock, the demo's final one)."""
    key = checkpoints.load_signing_key(settings.checkpoint_key_path)
    conn = _snapshot(engine)
    try:
        return checkpoints.write(conn, directory or settings.checkpoint_path, key, reason, now)
    finally:
        conn.rollback()
        conn.close()


@service(Action.READ, Resource.AUDIT_VERIFY)
def checkpoint(ctx: Ctx, directory: Path, signing_key: Path, reason: str = "manual") -> Path:
    """``reluth audit checkpoint``: a signed checkpoint of the database now."""
    engine = ctx.session.get_bind()
    assert isinstance(engine, Engine)
    key = checkpoints.load_signing_key(signing_key)
    conn = _snapshot(engine)
    try:
        return checkpoints.write(conn, directory, key, reason, ctx.now())
    finally:
        conn.rollback()
        conn.close()


def daily_checkpoint(engine: Engine, settings: Settings, now: dt.datetime) -> Path | None:
    """Today's checkpoint (UTC day) unless it was written already — by this process or by
    another worker of the web app (a day marker created exclusively decides who writes)."""
    import os

    directory = settings.checkpoint_path
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / f".daily-{now.astimezone(dt.UTC):%Y%m%d}"
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
    except FileExistsError:
        return None
    try:
        return write_checkpoint(engine, settings, "daily", now)
    except BaseException:
        marker.unlink(missing_ok=True)  # let the next attempt try again
        raise


def after_database_lock(engine: Engine, settings: Settings, now: dt.datetime) -> Path:
    """The hook a database lock calls once the lock is committed: a checkpoint of the locked
    database (NotConfigured when the signing key is missing — a lock must be anchored)."""
    return write_checkpoint(engine, settings, "database lock", now)
