"""The tampering suite of issue 14: on a fresh copy of a populated database, each thing someone
with direct database access could do (the triggers dropped first, as anyone owning the file or
the schema can) is caught by the verification the product ships — the keyed chain, the signed
checkpoint the product itself writes, the state replay, the allocation checks — with the first
finding naming the right table, record and row. The untouched copy verifies."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from storekit import (
    INVESTIGATOR,
    NURSE,
    STAT,
    add_account,
    add_users,
    read,
    ready_patients,
    work,
)
from tests.conftest import _postgres_base

from reluth import sealing
from reluth.auth.roles import Role
from reluth.config import Settings
from reluth.core import integrity
from reluth.db import audit, checkpoint
from reluth.db.auditkey import AuditKey, key_for
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.randomization import service as rnd
from reluth.randomization.models import AllocationSlot, AllocationStratum, Randomization
from reluth.records import views
from reluth.safety import service as safety
from reluth.safety.models import LabResult

LATER = dt.date(2025, 3, 20)
REVIEWER = "reviewer1"


@dataclass(frozen=True)
class Populated:
    url: str  # the template: never tampered with
    checkpoints: Path
    public_key: Path
    head: int


def _populate(engine: Engine, tmp: Path) -> Populated:
    """Accounts, a permuted-block list, six patients of whom four are randomized, labs (one
    corrected with a reason), then the checkpoint the product writes."""
    add_users(engine)
    add_account(engine, REVIEWER, Role.CENTRAL_REVIEWER)
    with work(engine, STAT) as ctx:
        rnd.configure(ctx, "blocks")
        rnd.generate_list(ctx, "tampering-suite-seed-0123456789", 8)
    codes = ready_patients(engine, 6, stratum=0)
    for code in codes[:4]:
        with work(engine, INVESTIGATOR) as ctx:
            rnd.randomize(ctx, code, f"req-{code}")
    raw = {"test": "platelets", "value": "150000", "unit": "/mm3", "lln": "150000"}
    with work(engine, NURSE, today=LATER) as ctx:
        for code in codes:
            safety.record_lab(ctx, code, {**raw, "date": "2025-03-10"})
    with work(engine, NURSE, today=LATER, reason="transcription error, source p. 2") as ctx:
        lab = ctx.session.scalars(select(LabResult).order_by(LabResult.id)).first()
        assert lab is not None
        safety.edit_lab(ctx, codes[0], lab.id, {"value": "140000", "lln": "150000"})
    directory = tmp / "checkpoints"
    signing = tmp / "checkpoint-signing.key"
    public = checkpoint.create_signing_key(signing)
    with engine.connect() as conn:
        checkpoint.write(
            conn, directory, checkpoint.load_signing_key(signing), "suite", dt.datetime.now(dt.UTC)
        )
        head = conn.execute(select(audit.AuditHead.last_seq)).scalar_one()
    return Populated(str(engine.url.render_as_string(hide_password=False)), directory, public, head)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Populated]:
    tmp = tmp_path_factory.mktemp("tampering")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'populated.db'}"
        eng = make_engine(url)
        upgrade(eng)
        built = _populate(eng, tmp)
        eng.dispose()
        yield built
        return
    base = _postgres_base()
    if base is None:
        pytest.skip("RELUTH_TEST_POSTGRES_URL not set")
    name = f"reluth_tamper_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    eng = make_engine(url)
    upgrade(eng)
    built = _populate(eng, tmp)
    eng.dispose()
    try:
        yield built
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def copy(populated: Populated, tmp_path: Path) -> Iterator[Engine]:
    """A fresh copy of the populated database (a file copy; a PostgreSQL template copy)."""
    source = make_url(populated.url)
    if source.get_backend_name() == "sqlite":
        target = tmp_path / "copy.db"
        shutil.copyfile(str(source.database), target)
        eng = make_engine(f"sqlite:///{target}")
        yield eng
        eng.dispose()
        return
    name = f"{source.database}_c{uuid.uuid4().hex[:6]}"
    admin = create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"'))
    eng = make_engine(source.set(database=name).render_as_string(hide_password=False))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_SQLITE_GUARDS = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_log_next_row",
    "audit_log_move_head",
    "audit_head_forward",
    "audit_head_no_delete",
    "audit_head_one_row",
)


def tamper(engine: Engine, change: Callable[[Connection], None]) -> None:
    """Switch the database's guards off, as an owner of the file or schema can, then change."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            for table in ("audit_log", "audit_head"):
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        else:
            for name in _SQLITE_GUARDS:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        change(conn)


def verify(
    engine: Engine, populated: Populated, key: AuditKey | None = None
) -> integrity.IntegrityReport:
    """What `reluth audit verify --key-file --checkpoints` runs, as the statistician."""
    with read(engine, STAT) as ctx:
        return integrity.verify_store(
            ctx,
            key or key_for(engine),
            populated.checkpoints,
            populated.public_key,
            True,
            sealing.configured_key(Settings.from_env()),
        )


def first(report: integrity.IntegrityReport) -> audit.Finding:
    assert not report.ok, "the tampering went unnoticed"
    return report.findings[0]


def _sql(conn: Connection, sql: str, **params: object) -> None:
    conn.execute(text(sql), params)


def _scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


# --------------------------------------------------------------------------------- the cases


def test_the_untouched_copy_verifies(copy: Engine, populated: Populated) -> None:
    report = verify(copy, populated)
    assert report.ok, report.findings
    assert report.rows_checked == report.last_seq == populated.head
    assert report.checkpoints_checked == 1 and report.records_replayed > 0
    assert report.not_done == []


def test_deleting_an_audit_row_in_the_middle(copy: Engine, populated: Populated) -> None:
    tamper(copy, lambda c: _sql(c, "DELETE FROM audit_log WHERE seq = 20"))
    f = first(verify(copy, populated))
    assert (f.check, f.seq) == ("chain", 20)


def test_editing_an_audit_row_in_the_middle(copy: Engine, populated: Populated) -> None:
    tamper(copy, lambda c: _sql(c, "UPDATE audit_log SET username = 'someone' WHERE seq = 20"))
    f = first(verify(copy, populated))
    assert (f.check, f.seq) == ("chain", 20) and "altered" in f.message


def test_appending_a_row_without_moving_the_head(copy: Engine, populated: Populated) -> None:
    def append(conn: Connection) -> None:
        last = conn.execute(select(audit.AuditLog).order_by(audit.AuditLog.seq.desc())).first()
        assert last is not None
        row = {**{k: getattr(last, k) for k in audit.HASHED_FIELDS}, "auth_method": None}
        row.update(seq=last.seq + 1, prev_hash=last.row_hash, reason="forged")
        forged = hashlib.sha256(audit.canonical_row(row)).hexdigest()
        conn.execute(audit.AuditLog.__table__.insert().values(**row, row_hash=forged))

    tamper(copy, append)
    f = first(verify(copy, populated))
    assert (f.check, f.seq) == ("chain", populated.head + 1)


def test_changing_a_lab_value_in_its_table(copy: Engine, populated: Populated) -> None:
    lab = _scalar(copy, "SELECT max(id) FROM lab_results")
    tamper(copy, lambda c: _sql(c, "UPDATE lab_results SET value = 99999 WHERE id = :i", i=lab))
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.record_id, f.field) == ("state", "lab_results", str(lab), "value")
    assert f.expected == '"150000"' and "99999" in (f.found or "")


def test_changing_a_corrected_lab_value_back(copy: Engine, populated: Populated) -> None:
    """The replay follows the audited correction (150000 -> 140000), not the first value."""
    lab = _scalar(copy, "SELECT min(id) FROM lab_results")
    tamper(copy, lambda c: _sql(c, "UPDATE lab_results SET value = 150000 WHERE id = :i", i=lab))
    f = first(verify(copy, populated))
    assert (f.table, f.record_id, f.field, f.expected) == (
        "lab_results",
        str(lab),
        "value",
        '"140000"',
    )


def test_flipping_a_randomized_arm(copy: Engine, populated: Populated) -> None:
    rid = _scalar(copy, "SELECT min(id) FROM randomizations")

    def flip(conn: Connection) -> None:
        _sql(
            conn,
            "UPDATE randomizations SET arm = CASE arm WHEN 'control' THEN 'experimental' "
            "ELSE 'control' END WHERE id = :i",
            i=rid,
        )

    tamper(copy, flip)
    report = verify(copy, populated)
    f = first(report)
    assert (f.check, f.table, f.record_id, f.field) == ("state", "randomizations", str(rid), "arm")
    assert any(x.check == "allocation" and x.field == "arm" for x in report.findings)


def test_swapping_two_upcoming_slots_without_the_key(copy: Engine, populated: Populated) -> None:
    """The arms are sealed: all a dump lets one do is move sealed slots, which then do not open."""
    with copy.connect() as conn:
        a, b = conn.execute(
            select(AllocationSlot.id, AllocationSlot.sealed)
            .where(AllocationSlot.patient_id.is_(None))
            .order_by(AllocationSlot.id)
            .limit(2)
        ).all()

    def swap(conn: Connection) -> None:
        for target, source in ((a, b), (b, a)):
            _sql(
                conn,
                "UPDATE allocation_slots SET sealed = :s WHERE id = :i",
                s=source.sealed,
                i=target.id,
            )

    tamper(copy, swap)
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.record_id, f.field) == (
        "allocation",
        "allocation_slots",
        str(a.id),
        "sealed",
    )


def test_flipping_an_upcoming_slot_with_the_key(copy: Engine, populated: Populated) -> None:
    """Even an insider holding the allocation key cannot flip a slot unseen: the list's content
    hash is recorded in the (audited) list row."""
    sealer = sealing.require_key(Settings.from_env()).sealer()
    with copy.connect() as conn:
        slot = conn.execute(
            select(AllocationSlot)
            .where(AllocationSlot.patient_id.is_(None))
            .order_by(AllocationSlot.id)
        ).first()
    assert slot is not None
    place = sealing.slot_place(slot.list_id, slot.stratum_key, slot.position)
    content = sealer.open(slot.sealed or "", place)
    content["arm"] = "control" if content["arm"] == "experimental" else "experimental"
    forged = sealer.seal(content, place)
    tamper(
        copy,
        lambda c: _sql(
            c, "UPDATE allocation_slots SET sealed = :s WHERE id = :i", s=forged, i=slot.id
        ),
    )
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.field) == ("allocation", "allocation_lists", "content_sha256")


def test_promoting_the_blinded_reviewer_to_statistician(copy: Engine, populated: Populated) -> None:
    uid = _scalar(copy, "SELECT id FROM users WHERE username = :u", u=REVIEWER)
    tamper(copy, lambda c: _sql(c, "UPDATE users SET role = 'statistician' WHERE id = :i", i=uid))
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.record_id, f.field) == ("state", "users", str(uid), "role")
    assert (f.expected, f.found) == ('"central_reviewer"', '"statistician"')


@pytest.mark.parametrize("seq", [0, -1])
def test_forged_rows_below_one(copy: Engine, populated: Populated, seq: int) -> None:
    code = "C01-0001"
    pid = _scalar(copy, "SELECT id FROM patients WHERE patient_code = :c", c=code)

    def forge(conn: Connection) -> None:
        for s in (seq, seq - 1):
            conn.execute(
                audit.AuditLog.__table__.insert().values(
                    seq=s,
                    at_utc="2024-01-01T00:00:00.000000Z",
                    username="ghost",
                    role="investigator",
                    action="insert",
                    table_name="patients",
                    record_id=str(pid),
                    new_value="{}",
                    prev_hash=audit.GENESIS_HASH,
                    row_hash=uuid.uuid4().hex * 2,
                )
            )

    tamper(copy, forge)
    report = verify(copy, populated)
    f = first(report)
    assert (f.check, f.seq, f.table, f.record_id) == ("chain", seq - 1, "patients", str(pid))
    assert report.rows_checked == populated.head + 2  # every row counted, whatever its seq
    with read(copy, STAT) as ctx:  # and the history pages do not list them as real history
        assert all(r.seq >= 1 for r in views.audit_history(ctx, code))


def test_deleting_the_last_rows_with_the_head(copy: Engine, populated: Populated) -> None:
    cut = populated.head - 50

    def truncate(conn: Connection) -> None:
        _sql(conn, "DELETE FROM audit_log WHERE seq > :s", s=cut)
        _sql(conn, "DELETE FROM audit_head")

    tamper(copy, truncate)
    report = verify(copy, populated)
    f = first(report)
    assert (f.check, f.table) == ("head", "audit_head")
    assert any(x.check == "checkpoint" and x.seq == cut + 1 for x in report.findings)


def test_moving_the_head_back(copy: Engine, populated: Populated) -> None:
    """Rows removed from the end and the head set to the new last row: a consistent chain, which
    only the checkpoint written past it can contradict."""
    cut = populated.head - 50

    def rewind(conn: Connection) -> None:
        last = conn.execute(
            text("SELECT row_hash FROM audit_log WHERE seq = :s"), {"s": cut}
        ).scalar_one()
        _sql(conn, "DELETE FROM audit_log WHERE seq > :s", s=cut)
        _sql(conn, "UPDATE audit_head SET last_seq = :s, last_hash = :h", s=cut, h=last)

    tamper(copy, rewind)
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.seq) == ("checkpoint", "audit_log", cut + 1)
    assert f.expected == str(populated.head)


def test_deleting_a_randomization_and_freeing_its_slot(copy: Engine, populated: Populated) -> None:
    with copy.connect() as conn:
        r = conn.execute(select(Randomization).order_by(Randomization.id.desc())).first()
    assert r is not None

    def undo(conn: Connection) -> None:
        _sql(conn, "DELETE FROM randomizations WHERE id = :i", i=r.id)
        _sql(conn, "UPDATE allocation_slots SET patient_id = NULL WHERE id = :i", i=r.slot_id)
        conn.execute(
            AllocationStratum.__table__.update()
            .where(AllocationStratum.stratum_key == r.stratum_key)
            .values(next_position=AllocationStratum.next_position - 1)
        )

    tamper(copy, undo)
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.record_id) == ("state", "randomizations", str(r.id))
    assert "missing from the table" in f.message


def test_a_used_slot_without_its_randomization(copy: Engine, populated: Populated) -> None:
    rid = _scalar(copy, "SELECT max(id) FROM randomizations")
    slot = _scalar(copy, "SELECT slot_id FROM randomizations WHERE id = :i", i=rid)
    tamper(copy, lambda c: _sql(c, "DELETE FROM randomizations WHERE id = :i", i=rid))
    report = verify(copy, populated)
    assert (first(report).table, first(report).record_id) == ("randomizations", str(rid))
    assert any(
        (x.check, x.table, x.record_id) == ("allocation", "allocation_slots", str(slot))
        for x in report.findings
    )


def test_rewriting_the_whole_chain_without_the_key(copy: Engine, populated: Populated) -> None:
    """Plain SHA-256 needs no key; the keyed hash does: row 1 already fails."""

    def rewrite(conn: Connection) -> None:
        prev = audit.GENESIS_HASH
        rows = conn.execute(select(*audit._COLUMNS).order_by(audit.AuditLog.seq)).all()
        for r in rows:
            row = {**r._mapping, "prev_hash": prev}
            if r.table_name == "users" and r.field is None:
                row["reason"] = "rewritten"
            prev = hashlib.sha256(audit.canonical_row(row)).hexdigest()
            _sql(
                conn,
                "UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE seq = :s",
                p=row["prev_hash"],
                h=prev,
                s=r.seq,
            )
        _sql(conn, "UPDATE audit_head SET last_hash = :h", h=prev)

    tamper(copy, rewrite)
    f = first(verify(copy, populated))
    assert (f.check, f.seq) == ("chain", 1)


def test_rewriting_the_chain_with_another_key(copy: Engine, populated: Populated) -> None:
    """A forger's own key re-seals the whole chain and the head's key id: the verifier's key is
    not that one, and the signed checkpoint still pins the true head hash."""
    theirs = AuditKey(b"a forger's own key, 32 bytes or more")

    def rewrite(conn: Connection) -> None:
        prev = audit.GENESIS_HASH
        for r in conn.execute(select(*audit._COLUMNS).order_by(audit.AuditLog.seq)).all():
            row = {**r._mapping, "prev_hash": prev}
            prev = audit.row_hash(row, theirs)
            _sql(
                conn,
                "UPDATE audit_log SET prev_hash = :p, row_hash = :h WHERE seq = :s",
                p=row["prev_hash"],
                h=prev,
                s=r.seq,
            )
        _sql(conn, "UPDATE audit_head SET last_hash = :h, key_id = :k", h=prev, k=theirs.key_id)

    tamper(copy, rewrite)
    report = verify(copy, populated)
    assert first(report).check == "key"
    forged = verify(copy, populated, key=theirs)  # even verified with the forger's key
    assert any(x.check == "checkpoint" and x.field == "row_hash" for x in forged.findings)


def test_a_record_inserted_behind_the_application(copy: Engine, populated: Populated) -> None:
    def insert(conn: Connection) -> None:
        conn.execute(
            LabResult.__table__.insert().values(
                id=9999,
                patient_id=_scalar(copy, "SELECT min(id) FROM patients"),
                sample_date=dt.date(2025, 3, 11),
                analyte="platelets",
                value=Decimal("1"),
                unit="/mm3",
                value_canonical=Decimal("1"),
                canonical_unit="10^9/L",
                protocol_version="RELUTH v1.0",
            )
        )

    tamper(copy, insert)
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.record_id) == ("state", "lab_results", "9999")


def test_a_record_deleted_behind_the_application(copy: Engine, populated: Populated) -> None:
    lab = _scalar(copy, "SELECT max(id) FROM lab_results")
    tamper(copy, lambda c: _sql(c, "DELETE FROM lab_results WHERE id = :i", i=lab))
    f = first(verify(copy, populated))
    assert (f.check, f.table, f.record_id) == ("state", "lab_results", str(lab))


def test_a_forged_checkpoint(copy: Engine, populated: Populated, tmp_path: Path) -> None:
    """A checkpoint signed by anyone but the sponsor's key is a finding, not an anchor."""
    directory = tmp_path / "checkpoints"
    shutil.copytree(populated.checkpoints, directory)
    checkpoint.create_signing_key(tmp_path / "forger.key")
    own = checkpoint.load_signing_key(tmp_path / "forger.key")
    with copy.connect() as conn:
        checkpoint.write(conn, directory, own, "forged", dt.datetime.now(dt.UTC))
    with read(copy, STAT) as ctx:
        report = integrity.verify_store(
            ctx, key_for(copy), directory, populated.public_key, True, None
        )
    assert [f.check for f in report.findings] == ["checkpoint"]
    assert "signature" in report.findings[0].message


def test_the_database_refuses_a_row_out_of_sequence(copy: Engine) -> None:
    """With the guards in place, only the next row of the chain can be inserted."""
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError, match="next row of the chain"), copy.begin() as conn:
        conn.execute(
            audit.AuditLog.__table__.insert().values(
                seq=0,
                at_utc="x",
                username="u",
                role="r",
                action="insert",
                table_name="t",
                record_id="1",
                prev_hash=audit.GENESIS_HASH,
                row_hash="f" * 64,
            )
        )
    for sql in ("DELETE FROM audit_head", "UPDATE audit_head SET last_seq = 1"):
        with pytest.raises(DBAPIError, match="audit_head moves only"), copy.begin() as conn:
            conn.execute(text(sql))


def test_the_parallel_walk_finds_what_the_serial_one_finds(
    copy: Engine, populated: Populated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a long trail's chain is walked in a second process on the same exported
    snapshot: the verdicts are the serial ones (forced here on the small copy)."""
    if copy.dialect.name != "postgresql":
        pytest.skip("the parallel walk is PostgreSQL's (one exported snapshot)")
    monkeypatch.setattr(integrity, "PARALLEL_FROM", 0)
    assert verify(copy, populated).ok
    cut = populated.head - 5

    def rewind(conn: Connection) -> None:
        last = conn.execute(
            text("SELECT row_hash FROM audit_log WHERE seq = :s"), {"s": cut}
        ).scalar_one()
        _sql(conn, "DELETE FROM audit_log WHERE seq > :s", s=cut)
        _sql(conn, "UPDATE audit_head SET last_seq = :s, last_hash = :h", s=cut, h=last)
        _sql(conn, "UPDATE audit_log SET reason = 'x' WHERE seq = 7")

    tamper(copy, rewind)
    findings = verify(copy, populated).findings
    assert [(f.check, f.seq) for f in findings[:2]] == [("chain", 7), ("checkpoint", cut + 1)]
