"""Site-side batch: stream files from IN_DIR through the de-identifier into OUT_DIR.

A batch never stops on one bad file (it is reported and skipped), never writes into its input,
never overwrites an output (names derive from the new UIDs; an existing name is a collision,
reported), and holds one dataset per worker in memory at a time.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from reluth.errors import ValidationError
from reluth.imaging.deid import DeidError, DeidSettings, deidentify_dataset, map_uid
from reluth.imaging.profile import make_profile


@dataclass(frozen=True)
class FileResult:
    source: str  # path relative to IN_DIR (stays on the site's console, never in outputs)
    status: str  # written | skipped | collision
    output: str | None = None
    message: str = ""
    review: str | None = None


@dataclass
class BatchReport:
    patient_id: str
    files: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def written(self) -> int:
        return self.count("written")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def collisions(self) -> int:
        return self.count("collision")

    @property
    def review(self) -> list[FileResult]:
        return [f for f in self.files if f.review]


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file under root, in a stable order, lazily."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def read_dataset(path: Path | io.BytesIO) -> Dataset:
    """A DICOM file, or a bare dataset without preamble; anything else is a DeidError."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        pass
    except Exception as exc:  # truncated or corrupt file
        raise DeidError(f"unreadable DICOM: {type(exc).__name__}: {exc}") from None
    try:
        ds = pydicom.dcmread(path, force=True)
        _ = list(ds.keys())
    except Exception as exc:
        raise DeidError(f"not a DICOM file: {type(exc).__name__}: {exc}") from None
    if "SOPClassUID" not in ds and "PatientID" not in ds and "Modality" not in ds:
        raise DeidError("not a DICOM file (no preamble and no SOP class, patient or modality)")
    return ds


def _check_dirs(in_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    src = in_dir.resolve()
    dst = out_dir.resolve()
    if not src.is_dir():
        raise ValidationError("IN_DIR", f"not a directory: {in_dir}", "a folder of DICOM files")
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise ValidationError(
            "OUT_DIR", "must be outside IN_DIR (the input is never written to)", "a separate folder"
        )
    return src, dst


def output_relpath(ds: Dataset, settings: DeidSettings, source_rel: str) -> str:
    """study/series/instance.dcm from the (already mapped) UIDs; an instance without a SOP
    Instance UID is named by a keyed hash of its source path."""
    study = str(ds.get("StudyInstanceUID", "") or "no-study")
    series = str(ds.get("SeriesInstanceUID", "") or "no-series")
    sop = str(ds.get("SOPInstanceUID", "") or map_uid(settings.key, "path:" + source_rel))
    return f"{study}/{series}/{sop}.dcm"


def _write_exclusive(ds: Dataset, target: Path) -> bool:
    """Write via a temporary file and a hard link, which fails if the target exists: no
    overwrite even with several workers racing. False on collision."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            ds.save_as(fh)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def process_file(path: Path, src: Path, dst: Path, settings: DeidSettings) -> FileResult:
    rel = str(path.relative_to(src))
    try:
        ds = read_dataset(path)
        outcome = deidentify_dataset(ds, make_profile(settings.options), settings)
        out_rel = output_relpath(ds, settings, rel)
        if not _write_exclusive(ds, dst / out_rel):
            return FileResult(rel, "collision", out_rel, "output exists; not overwritten")
        return FileResult(rel, "written", out_rel, review=outcome.burned_in_review)
    except DeidError as exc:
        return FileResult(rel, "skipped", message=str(exc))
    except Exception as exc:  # one bad file never stops the batch
        return FileResult(rel, "skipped", message=f"{type(exc).__name__}: {exc}")


def _work(args: tuple[Path, Path, Path, DeidSettings]) -> FileResult:
    return process_file(*args)


def deidentify_tree(
    in_dir: Path,
    out_dir: Path,
    settings: DeidSettings,
    workers: int = 1,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchReport:
    src, dst = _check_dirs(in_dir, out_dir)
    dst.mkdir(parents=True, exist_ok=True)
    report = BatchReport(settings.patient_id)
    jobs = ((p, src, dst, settings) for p in iter_files(src))
    if workers <= 1:
        results: Iterator[FileResult] = (_work(j) for j in jobs)
        for res in results:
            report.files.append(res)
            if on_result:
                on_result(res)
    else:
        with get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for res in pool.imap_unordered(_work, jobs, chunksize=4):
                report.files.append(res)
                if on_result:
                    on_result(res)
    report.files.sort(key=lambda f: f.source)
    return report
