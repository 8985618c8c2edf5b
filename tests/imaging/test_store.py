from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.store.storekit import add_account, add_users, at, read, work

from reluth.auth.roles import Role
from reluth.db.engine import make_engine
from reluth.db.migrate import upgrade
from reluth.imaging import store as imaging_store
from reluth.imaging.batch import deidentify_tree
from reluth.imaging.models import ImagingInstance, ImagingSeries
from reluth.imaging.store import store_path

from .conftest import PATIENT, settings

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
PHYSICIST = "phys1"


def ingest(src: Path, db_url: str, store: Path, now: dt.datetime) -> imaging_store.IngestReport:
    """The central ingest as the medical physicist (the store's owner), on a migrated database."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        add_users(engine)
        add_account(engine, PHYSICIST, Role.MEDICAL_PHYSICIST)
        with work(engine, PHYSICIST, trial=at(now)) as ctx:
            return imaging_store.ingest(ctx, src, store)
    finally:
        engine.dispose()


def catalogue(db_url: str) -> list[dict[str, object]]:
    engine = make_engine(db_url)
    try:
        with read(engine, PHYSICIST) as ctx:
            return imaging_store.catalogue(ctx)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def deid_dir(raw_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deid-store") / "out"
    deidentify_tree(raw_export, out, settings(cycle=2))
    return out


def test_ingest_catalogues_and_is_idempotent(db_url: str, deid_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    files = sorted(deid_dir.rglob("*.dcm"))
    first = ingest(deid_dir, db_url, store, now=NOW)
    assert first.stored == len(files) and not first.refused
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert store_path(store, digest).read_bytes() == path.read_bytes()
    second = ingest(deid_dir, db_url, store, now=NOW)
    assert second.stored == 0 and second.already_present == len(files)
    engine = make_engine(db_url)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ImagingInstance)) == len(files)
        rows = s.scalars(select(ImagingSeries)).all()
        assert {r.patient_pseudonym for r in rows} == {PATIENT}
        assert {r.cycle for r in rows} == {2}
        assert {(r.modality, r.time_point) for r in rows} == {
            ("NM", "4h"),
            ("NM", "24h"),
            ("CT", "4h"),
            ("CT", "24h"),
        }
        # 32x32 test volumes: the matrix and voxel-size checks warn, nothing fails
        assert {r.modality: r.qc_status for r in rows} == {"NM": "WARN", "CT": "PASS"}
        assert sum(r.instances for r in rows) == len(files)
    engine.dispose()
    assert len(catalogue(db_url)) == 4


def test_non_deidentified_files_are_refused(db_url: str, raw_export: Path, tmp_path: Path) -> None:
    report = ingest(raw_export, db_url, tmp_path / "store", now=NOW)
    assert report.stored == 0
    assert len(report.refused) == len(list(raw_export.rglob("*.dcm")))
    assert all("not de-identified" in why for _, why in report.refused)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*"))
    assert catalogue(db_url) == []


def test_truncated_deidentified_file_is_refused(deid_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    nm = next(p for p in sorted(deid_dir.rglob("*.dcm")) if p.stat().st_size > 60000)
    (src / "cut.dcm").write_bytes(nm.read_bytes()[:-5000])
    report = ingest(src, f"sqlite:///{tmp_path / 't.db'}", tmp_path / "store", now=NOW)
    assert report.stored == 0
    assert report.refused and "truncated" in report.refused[0][1]
