"""Site-side batch: stream files from IN_DIR through the de-identifier into OUT_DIR.

A batch never stops on one bad file (it is reported and skipped), never writes into its input,
never overwrites an output (names derive from the new UIDs; an existing name is a collision,
reported), and holds one dataset per worker in memory at a time. Its output does not depend on
the number of workers: each worker creates its output exclusively under its final name, and
only when that name is taken writes a private staged copy instead; the parent, taking results
in source order, settles shared names so that the first source in order wins.
"""

from __future__ import annotations

import io
import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.imaging.deid import (
    Deidentifier,
    DeidError,
    DeidSettings,
    compile_deidentifier,
    map_uid,
    peek,
    peek_text,
)
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


def read_dataset(path: Path | io.BytesIO, source: int | None = None) -> Dataset:
    """A DICOM file, or a bare dataset without preamble; anything else is a DeidError.
    source: a descriptor of the file at path, opened for reading at offset 0 (not closed)."""
    if isinstance(path, Path):
        head = _read_head(path, source)
        if head is not None:
            check_complete(head)
            return head
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


def _open_source(path: Path) -> int | None:
    """A read descriptor on path, or None if it cannot be opened (dcmread words why)."""
    try:
        return os.open(path, os.O_RDONLY | _BINARY)
    except OSError:
        return None


def _read_head(path: Path, source: int | None) -> Dataset | None:
    """The file as ``dcmread(path, defer_size=DEFER_BYTES)`` reads it, parsed from one read of
    its first DEFER_BYTES (no seeks, one open): when those are the whole file, or everything
    before the deferred pixel data that ends it. None otherwise (anything else, unusual or
    not DICOM, is read the usual way). The same bytes parsed: the same dataset."""
    fd = _open_source(path) if source is None else source
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        parts: list[bytes] = []
        want = min(DEFER_BYTES, st.st_size)
        while want > 0:
            part = os.read(fd, want)
            if not part:
                break
            parts.append(part)
            want -= len(part)
    finally:
        if source is None:
            os.close(fd)
    head = b"".join(parts)
    try:
        ds = pydicom.dcmread(io.BytesIO(head), defer_size=DEFER_BYTES)
    except Exception:
        return None
    if len(head) != st.st_size:
        # a deferred value is longer than DEFER_BYTES, so nothing after it was parsed: it must
        # be the pixel data and end the file
        pixels = ds._dict.get(_PIXEL_DATA)
        if not (
            isinstance(pixels, RawDataElement)
            and pixels.value is None
            and pixels.length != 0xFFFFFFFF
            and pixels.value_tell + pixels.length == st.st_size
        ):
            return None
    # as if read from the path: deferred values are read from the file, not from this buffer
    ds.filename, ds.buffer, ds.fileobj_type = str(path), None, open
    ds.timestamp = st.st_mtime
    return ds


# fork where the platform has it (Linux), spawn elsewhere (Windows and macOS sites)
_START_METHOD = "fork" if "fork" in get_all_start_methods() else "spawn"
DEFER_BYTES = 65536
_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
SMALL_BATCH = 48  # below this many files one process is faster than a pool
LOOKAHEAD = 4096  # paths listed ahead to size the tasks sent to workers
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_PIXEL_DATA = BaseTag(0x7FE00010)
_PIXEL_TAGS = (_PIXEL_DATA, BaseTag(0x7FE00008), BaseTag(0x7FE00009))
_ROWS = BaseTag(0x00280010)
_DIRECTORY_RECORDS = BaseTag(0x00041220)


def chunk_size(files: int, workers: int) -> int:
    """Files per task: about 16 tasks per worker (load stays balanced when one worker is slowed
    by other jobs), within 4-64 (each task costs the parent a wake-up and a round trip)."""
    return max(4, min(64, files // (workers * 16)))


def check_complete(ds: Dataset) -> None:
    """pydicom reads a truncated file silently; an image whose pixel data is missing or shorter
    than its header says is refused rather than written out as a partial copy. Values are
    peeked, not converted: the elements stay raw and are written back as read."""
    tags = ds._dict
    sop_class = peek(ds, 0x00080016)
    if sop_class == MEDIA_STORAGE_DIRECTORY or _DIRECTORY_RECORDS in tags:
        raise DeidError(
            "DICOMDIR (media directory, lists patients and paths): not copied; "
            "rebuild it from the de-identified files"
        )
    is_image = _ROWS in tags or (
        sop_class is not None and "Image Storage" in str(getattr(sop_class, "name", ""))
    )
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
        rows, cols = int(peek(ds, 0x00280010)), int(peek(ds, 0x00280011))
        frames = int(peek(ds, 0x00280008) or 1)  # Number of Frames
        samples = int(peek(ds, 0x00280002) or 1)  # Samples per Pixel
        bits = int(peek(ds, 0x00280100))  # Bits Allocated
    except (AttributeError, TypeError, ValueError):
        return
    if str(peek(ds, 0x00280004) or "") == "YBR_FULL_422":  # Photometric Interpretation
        samples = 2  # two chroma samples shared by each pair of pixels
    expected = (rows * cols * frames * samples * bits + 7) // 8
    held = _pixel_bytes(ds)
    if held < expected:
        raise DeidError(f"pixel data holds {held} bytes, header says {expected}: truncated")


def _pixel_bytes(ds: Dataset) -> int:
    """Bytes of native pixel data actually present, without reading a deferred value."""
    elem = ds._dict.get(_PIXEL_DATA)
    if elem is not None and elem.is_raw and elem.value is None:
        filename = getattr(ds, "filename", None)
        length = int(getattr(elem, "length", 0))
        tell = int(getattr(elem, "value_tell", 0))
        if isinstance(filename, str):
            return max(0, min(length, os.path.getsize(filename) - tell))
        return length
    value = peek(ds, _PIXEL_DATA)
    return len(value) if value is not None else 0


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
        raise invalid(
            "IN_DIR",
            "not_a_directory",
            N_("not a directory: {path}"),
            N_("a folder of DICOM files"),
            path=str(in_dir),
        )
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise invalid(
            "OUT_DIR",
            "output_inside_input",
            N_("must be outside IN_DIR (the input is never written to)"),
            N_("a separate folder"),
        )
    return src, dst


def output_relpath(ds: Dataset, settings: DeidSettings, source_rel: str) -> str:
    """study/series/instance.dcm from the (already mapped) UIDs; an instance without a SOP
    Instance UID is named by a keyed hash of its source path."""
    study = peek_text(ds, 0x0020000D) or "no-study"
    series = peek_text(ds, 0x0020000E) or "no-series"
    sop = peek_text(ds, 0x00080018) or map_uid(
        settings.key, "path:" + source_rel, settings.patient_id
    )
    return f"{study}/{series}/{sop}.dcm"


_WRITE_BUFFER = 1 << 16  # the header in one write; given, so no isatty() probe per file


def write_exclusive(target: Path, write: Callable[[BinaryIO], None], mode: int = 0o644) -> bool:
    """Create the target exclusively (O_CREAT|O_EXCL): never an overwrite, even with workers
    racing; a write that fails removes its partial file. False if the target already existed.
    Its folders are made when missing. (A crash mid-write can leave a partial file; the central
    verification refuses it as truncated.)"""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY
    try:
        try:
            fd = os.open(target, flags, mode)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, flags, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as fh:
            write(fh)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return True


@dataclass(frozen=True)
class _Batch:
    """What every worker of one batch shares, set once per process (never sent per file)."""

    src: Path
    dst: Path
    staging: Path
    settings: DeidSettings
    deidentifier: Deidentifier


_BATCH: _Batch | None = None


def _start_worker(src: Path, dst: Path, staging: Path, settings: DeidSettings) -> None:
    """Pool initializer (and the single-process path): compile the profile and the keyed
    state once for this process."""
    global _BATCH
    deidentifier = compile_deidentifier(make_profile(settings.options), settings)
    _BATCH = _Batch(src, dst, staging, settings, deidentifier)


def _work(job: tuple[int, Path]) -> tuple[FileResult, Path | None]:
    """De-identify one file, written directly under its final name if that is free, else into
    the staging folder for the parent to decide: (result, staged copy or None)."""
    index, path = job
    batch = _BATCH
    assert batch is not None, "worker not started"
    rel = str(path.relative_to(batch.src))
    source = _open_source(path)  # read once, the pixel data copied from it
    try:
        ds = read_dataset(path, source)
        decode_if_reencoded(ds)
        outcome = batch.deidentifier.apply(ds)
        out_rel = output_relpath(ds, batch.settings, rel)
        written = FileResult(rel, "written", out_rel, review=outcome.burned_in_review)

        def write(fh: BinaryIO) -> None:
            write_dataset_file(ds, fh, source)

        if write_exclusive(batch.dst / out_rel, write):
            return written, None
        staged = batch.staging / f"{index:09d}.dcm"
        if not write_exclusive(staged, write):
            raise DeidError(f"staged file {staged.name} exists")  # another batch's: never reused
        return written, staged
    except DeidError as exc:
        return FileResult(rel, "skipped", message=str(exc)), None
    except Exception as exc:  # one bad file never stops the batch
        return FileResult(rel, "skipped", message=f"{type(exc).__name__}: {exc}"), None
    finally:
        if source is not None:
            os.close(source)


def _collision(res: FileResult) -> FileResult:
    return FileResult(
        res.source, "collision", res.output, "output exists; not overwritten", res.review
    )


def _publish_all(
    results: Iterable[tuple[FileResult, Path | None]],
    dst: Path,
    report: BatchReport,
    on_result: Callable[[FileResult], None] | None,
) -> None:
    """Take the workers' results in source order and settle shared names: the first source in
    order holds a name, whichever worker wrote first. A source that found its name taken left a
    staged copy; if the name is taken later by a source after it in order, the staged copy
    replaces that one's file (a file of this batch); if no source of this batch took it, the
    name was there before (a collision, the file kept)."""
    files: list[FileResult | None] = []
    held: set[str] = set()  # names settled for a source of this batch
    waiting: dict[str, list[tuple[int, FileResult, Path]]] = {}  # staged, name not settled

    def settle(i: int, res: FileResult) -> None:
        files[i] = res
        if on_result:
            on_result(res)

    for res, staged in results:  # in source order, whatever the number of workers
        i = len(files)
        files.append(None)
        name = res.output
        if res.status != "written" or name is None:
            settle(i, res)
        elif staged is None:  # written directly under its name
            earlier = waiting.pop(name, [])
            if earlier:  # sources before this one found the name taken by it: the first wins
                j, first, first_staged = earlier[0]
                os.replace(first_staged, dst / name)
                settle(j, first)
                res = _collision(res)
                for k, other, other_staged in earlier[1:]:
                    other_staged.unlink()
                    settle(k, _collision(other))
            held.add(name)
            settle(i, res)
        elif name in held:  # a source before this one holds the name
            staged.unlink()
            settle(i, _collision(res))
        else:  # taken by a later source, or there before the batch: known later
            waiting.setdefault(name, []).append((i, res, staged))
    for entries in waiting.values():  # no source of this batch took these: there before
        for k, other, other_staged in entries:
            other_staged.unlink()
            settle(k, _collision(other))
    report.files.extend(f for f in files if f is not None)


def deidentify_tree(
    in_dir: Path,
    out_dir: Path,
    settings: DeidSettings,
    workers: int = 1,
    on_result: Callable[[FileResult], None] | None = None,
) -> BatchReport:
    """De-identify every file under in_dir into out_dir with up to `workers` processes; the
    files written are the same bytes under the same names whatever `workers` is."""
    src, dst = _check_dirs(in_dir, out_dir)
    dst.mkdir(parents=True, exist_ok=True)
    report = BatchReport(settings.patient_id)
    staging = Path(tempfile.mkdtemp(prefix=".reluth-staging-", dir=dst))
    try:
        jobs = enumerate(iter_files(src))
        head = list(itertools.islice(jobs, LOOKAHEAD))
        if workers <= 1 or len(head) < SMALL_BATCH:
            # a few files: starting worker processes would cost more than it saves
            _start_worker(src, dst, staging, settings)
            _publish_all(map(_work, itertools.chain(head, jobs)), dst, report, on_result)
        else:
            # compiled here first, so forked workers inherit it
            compile_deidentifier(make_profile(settings.options), settings)
            context = get_context(_START_METHOD)
            with context.Pool(workers, _start_worker, (src, dst, staging, settings)) as pool:
                chunk = chunk_size(len(head), workers)
                results = pool.imap(_work, itertools.chain(head, jobs), chunksize=chunk)
                _publish_all(results, dst, report, on_result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.files.sort(key=lambda f: f.source)
    return report
