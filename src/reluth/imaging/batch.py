"""Site-side batch: stream files from IN_DIR through the de-identifier into OUT_DIR.

A batch never stops on one bad file (it is reported and skipped), never writes into its input,
never overwrites an output (names derive from the new UIDs; an existing name is a collision,
reported), and holds one dataset per worker in memory at a time.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from reluth.errors import ValidationError
from reluth.imaging.deid import DeidError, DeidSettings, deidentify_dataset, map_uid
from reluth.imaging.profile import make_profile
from reluth.imaging.writer import write_dataset_file


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
        # large values (pixel data) are not read now: the writer copies them from the source
        ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
        check_complete(ds)
        return ds
    except InvalidDicomError:
        pass
    except DeidError:
        raise
    except Exception as exc:  # truncated or corrupt file
        raise DeidError(f"unreadable DICOM: {type(exc).__name__}: {exc}") from None
    try:
        ds = pydicom.dcmread(path, force=True)
        _ = list(ds.keys())
    except Exception as exc:
        raise DeidError(f"not a DICOM file: {type(exc).__name__}: {exc}") from None
    if "SOPClassUID" not in ds and "PatientID" not in ds and "Modality" not in ds:
        raise DeidError("not a DICOM file (no preamble and no SOP class, patient or modality)")
    check_complete(ds)
    return ds


# fork where the platform has it (Linux), spawn elsewhere (Windows and macOS sites)
_START_METHOD = "fork" if "fork" in get_all_start_methods() else "spawn"
DEFER_BYTES = 65536
SMALL_BATCH = 48  # below this many files one process is faster than a pool
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_PIXEL_DATA = BaseTag(0x7FE00010)
_PIXEL_TAGS = (_PIXEL_DATA, BaseTag(0x7FE00008), BaseTag(0x7FE00009))
_ROWS = BaseTag(0x00280010)
_DIRECTORY_RECORDS = BaseTag(0x00041220)


def check_complete(ds: Dataset) -> None:
    """pydicom reads a truncated file silently; an image whose pixel data is missing or shorter
    than its header says is refused rather than written out as a partial copy."""
    tags = ds._dict
    sop_class = ds.get("SOPClassUID")
    if sop_class == MEDIA_STORAGE_DIRECTORY or _DIRECTORY_RECORDS in tags:
        raise DeidError(
            "DICOMDIR (media directory, lists patients and paths): not copied; "
            "rebuild it from the de-identified files"
        )
    is_image = _ROWS in tags or (sop_class is not None and "Image Storage" in sop_class.name)
    if not is_image:
        return
    present = [t for t in _PIXEL_TAGS if t in tags]
    if not present:
        raise DeidError("image without pixel data: truncated or incomplete file")
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if present[0] != _PIXEL_DATA or (syntax is not None and syntax.is_compressed):
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        samples = 2  # two chroma samples shared by each pair of pixels
    expected = (rows * cols * frames * samples * bits + 7) // 8
    held = _pixel_bytes(ds)
    if held < expected:
        raise DeidError(f"pixel data holds {held} bytes, header says {expected}: truncated")


def _pixel_bytes(ds: Dataset) -> int:
    """Bytes of native pixel data actually present, without reading a deferred value."""
    elem = ds._dict.get(BaseTag(0x7FE00010))
    if elem is not None and elem.is_raw and elem.value is None:
        filename = getattr(ds, "filename", None)
        length = int(getattr(elem, "length", 0))
        tell = int(getattr(elem, "value_tell", 0))
        if isinstance(filename, str):
            return max(0, min(length, os.path.getsize(filename) - tell))
        return length
    return len(ds.PixelData)


def decode_if_reencoded(ds: Dataset) -> None:
    """Untouched elements are written back as read (fast) unless the file was read in another
    encoding than the one it will be written in (declared explicit VR but found implicit, or
    the reverse): then every element is decoded so pydicom re-encodes it."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_private:
        return
    read_as = getattr(ds, "original_encoding", (None, None))
    vr_missing = not syntax.is_implicit_VR and any(
        getattr(e, "VR", "") is None for e in ds._dict.values()
    )
    if vr_missing or (
        read_as != (None, None) and (syntax.is_implicit_VR, syntax.is_little_endian) != read_as
    ):
        for _ in ds.iterall():
            pass


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
    sop = str(
        ds.get("SOPInstanceUID", "")
        or map_uid(settings.key, "path:" + source_rel, settings.patient_id)
    )
    return f"{study}/{series}/{sop}.dcm"


_MADE_DIRS: set[Path] = set()


def write_exclusive(target: Path, write: Callable[[BinaryIO], None], mode: int = 0o644) -> bool:
    """Create the target exclusively (O_CREAT|O_EXCL): never an overwrite, even with workers
    racing; a write that fails removes its partial file. False if the target already existed.
    (A crash mid-write can leave a partial file; the central verification refuses it as
    truncated.)"""
    parent = target.parent
    if parent not in _MADE_DIRS:
        parent.mkdir(parents=True, exist_ok=True)
        _MADE_DIRS.add(parent)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return True


def process_file(path: Path, src: Path, dst: Path, settings: DeidSettings) -> FileResult:
    rel = str(path.relative_to(src))
    try:
        ds = read_dataset(path)
        decode_if_reencoded(ds)
        outcome = deidentify_dataset(ds, make_profile(settings.options), settings)
        out_rel = output_relpath(ds, settings, rel)
        if not write_exclusive(dst / out_rel, lambda fh: write_dataset_file(ds, fh)):
            return FileResult(
                rel,
                "collision",
                out_rel,
                "output exists; not overwritten",
                outcome.burned_in_review,
            )
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
    head = list(itertools.islice(jobs, SMALL_BATCH))
    if workers <= 1 or len(head) < SMALL_BATCH:
        # a few files: starting worker processes would cost more than it saves
        for res in map(_work, itertools.chain(head, jobs)):
            report.files.append(res)
            if on_result:
                on_result(res)
    else:
        with get_context(_START_METHOD).Pool(workers) as pool:
            for res in pool.imap_unordered(_work, itertools.chain(head, jobs), chunksize=8):
                report.files.append(res)
                if on_result:
                    on_result(res)
    report.files.sort(key=lambda f: f.source)
    return report
