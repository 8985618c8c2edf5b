"""The parallel batch: the same files whatever the number of workers, pixel data copied
byte for byte and never decoded, a name there before never replaced, no staged copy left."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.tag import BaseTag

from reluth.imaging import batch
from reluth.imaging.batch import BatchReport, deidentify_tree, read_dataset
from reluth.imaging.deid import DeidError, DeidSettings, compile_deidentifier
from reluth.imaging.profile import make_profile
from reluth.imaging.synthetic import SyntheticPatient, write_patient

from .conftest import settings, small_options

PIXELS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


@pytest.fixture(scope="module")
def mixed_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pydicom's test files (several encodings of one instance among them: collisions) and a
    synthetic SPECT/CT export: well above the size where the batch starts worker processes."""
    src = tmp_path_factory.mktemp("mixed") / "in"
    (src / "pydicom").mkdir(parents=True)
    for i, f in enumerate(Path(f) for f in get_testdata_files()):
        if f.is_file():
            shutil.copy(f, src / "pydicom" / f"{i:03d}_{f.name}")
    write_patient(src / "export", SyntheticPatient(), small_options(ct_slices=12))
    return src


def _run(src: Path, out: Path, workers: int) -> tuple[BatchReport, dict[str, bytes]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = deidentify_tree(src, out, settings(), workers=workers)
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return report, files


def test_same_bytes_and_report_whatever_the_worker_count(mixed_input: Path, tmp_path: Path) -> None:
    total = sum(1 for p in mixed_input.rglob("*") if p.is_file())
    assert total > 3 * batch.SMALL_BATCH  # the pool is really used with 2 and 3 workers
    one, files_one = _run(mixed_input, tmp_path / "w1", 1)
    assert one.written > 100 and one.collisions > 0
    for workers in (2, 3):
        report, files = _run(mixed_input, tmp_path / f"w{workers}", workers)
        assert files == files_one, workers  # same names, same bytes
        assert report.files == one.files, workers  # same statuses, messages, reviews


def test_first_source_in_order_wins_a_shared_name(mixed_input: Path, tmp_path: Path) -> None:
    report, _ = _run(mixed_input, tmp_path / "out", 2)
    by_name: dict[str, list[str]] = {}
    for f in report.files:
        if f.output is not None:
            by_name.setdefault(f.output, []).append(f.status)
    shared = [s for s in by_name.values() if len(s) > 1]
    assert shared  # several encodings of one instance in pydicom's files
    for statuses in shared:
        assert statuses[0] == "written" and set(statuses[1:]) == {"collision"}


def _pixel_bytes(path: Path) -> dict[int, bytes]:
    """The pixel data elements' value bytes as stored in the file (no decoding)."""
    ds = pydicom.dcmread(path, defer_size=0, force=True)  # values deferred: offsets only
    out: dict[int, bytes] = {}
    with open(path, "rb") as fh:
        for tag in PIXELS:
            elem = ds._dict.get(BaseTag(tag))
            if elem is not None and elem.length not in (0, 0xFFFFFFFF):
                fh.seek(elem.value_tell)
                out[tag] = fh.read(elem.length)
            elif elem is not None:
                out[tag] = ds[tag].value  # undefined length (encapsulated): pydicom's bytes
    return out


def test_pixel_data_bytes_unchanged(mixed_input: Path, tmp_path: Path) -> None:
    report, _ = _run(mixed_input, tmp_path / "out", 2)
    compared = 0
    for f in report.files:
        if f.status != "written" or f.output is None:
            continue
        before = _pixel_bytes(mixed_input / f.source)
        after = _pixel_bytes(tmp_path / "out" / f.output)
        assert after == before, f.source
        compared += bool(before)
    assert compared > 60


def test_large_pixel_data_is_never_read(tmp_path: Path) -> None:
    """Deferred on reading, still unread after the checks and the de-identification: the writer
    copies it from the source file."""
    opts = small_options(matrix=48, ct_slices=2, ct_size=256, timepoints_h=(24.0,))
    write_patient(tmp_path, SyntheticPatient(), opts)  # SPECT 221 kB, CT 131 kB of pixels
    deid = compile_deidentifier(make_profile(), settings())
    deferred = 0
    for path in sorted(tmp_path.rglob("*.dcm")):
        ds = read_dataset(path)
        deid.apply(ds)
        elem = ds._dict[BaseTag(0x7FE00010)]
        if elem.length > batch.DEFER_BYTES:
            assert elem.is_raw and elem.value is None, path.name
            deferred += 1
    assert deferred == 3


def test_no_staging_left_and_a_name_there_before_is_never_replaced(
    raw_export: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report, files = _run(raw_export, out, 1)
    assert report.written == len(files) > 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    name = next(iter(files))
    (out / name).write_bytes(b"there before")
    for workers in (1, 2):
        again, _ = _run(raw_export, out, workers)
        assert again.written == 0 and again.collisions == len(again.files) == report.written
        assert {f.message for f in again.files} == {"output exists; not overwritten"}
        assert (out / name).read_bytes() == b"there before"
        assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_later_source_that_writes_a_shared_name_first_yields_it(
    raw_export: Path, tmp_path: Path
) -> None:
    """Workers finish in any order: when a source after another in order takes their shared
    name first, the first source's staged copy replaces its file; the report and the bytes are
    those of one worker going in order."""
    src = tmp_path / "in"
    src.mkdir()
    one = sorted(raw_export.rglob("*.dcm"))[0]
    for name in ("a.dcm", "b.dcm", "c.dcm"):  # one instance three times: one output name
        shutil.copy(one, src / name)
    ordered, files = _run(src, tmp_path / "ordered", 1)
    assert [f.status for f in ordered.files] == ["written", "collision", "collision"]
    out = tmp_path / "out"
    out.mkdir()
    staging = out / ".staging"
    staging.mkdir()
    batch._start_worker(src, out, staging, settings())
    jobs = list(enumerate(sorted(src.iterdir())))
    done = {job[0]: batch._work(job) for job in reversed(jobs)}  # c first, then b, then a
    assert [done[i][1] is None for i in range(3)] == [False, False, True]  # c took the name
    report = BatchReport(settings().patient_id)
    batch._publish_all((done[i] for i in range(3)), out, report, None)
    assert report.files == ordered.files
    got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got == files  # a's bytes under the name, no staged copy left


def test_reading_the_head_once_gives_the_dataset_dcmread_gives(
    mixed_input: Path, tmp_path: Path
) -> None:
    """The one-read parse of a file's first bytes equals pydicom's reading of the file, or is
    not used (None): every file of pydicom's test set and the synthetic export."""
    used = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(p for p in mixed_input.rglob("*") if p.is_file()):
            head = batch._read_head(path, None)
            if head is None:
                continue
            whole = pydicom.dcmread(path, defer_size=batch.DEFER_BYTES)
            assert head.preamble == whole.preamble, path.name
            assert head.file_meta == whole.file_meta, path.name
            assert head.original_encoding == whole.original_encoding, path.name
            assert list(head._dict.items()) == list(whole._dict.items()), path.name
            assert (head.filename, head.buffer, head.timestamp) == (
                whole.filename,
                None,
                whole.timestamp,
            ), path.name
            used += 1
    assert used > 100


def test_a_worker_error_leaves_no_partial_output(
    raw_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose writing fails half-way is reported, and neither its staged copy nor a
    partial output remains."""

    def broken(ds: pydicom.Dataset, fh: object, source: int | None = None) -> None:
        fh.write(b"partial")  # type: ignore[attr-defined]
        raise DeidError("disk full")

    monkeypatch.setattr(batch, "write_dataset_file", broken)
    out = tmp_path / "out"
    report, files = _run(raw_export, out, 1)
    assert report.written == 0 and report.skipped == len(report.files) > 0
    assert {f.message for f in report.files} == {"disk full"}
    assert files == {}


def _odd_values(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Values the raw fast path must treat exactly as pydicom's decoded path does."""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDescription = "SPECT Été DUPONT 24h"  # not ASCII: decoded by pydicom
    ds.SeriesDescription = "CTAC\\B31s 5mm DUPONT"  # two values
    ds.StudyDate = "2026"  # coarser than a day: emptied
    ds.SeriesDate = "20260230"  # not a date: emptied
    ds.ContentDate = ["20260101", "20260102"]
    ds.AcquisitionDateTime = "20260302131700.123+0100"
    ds.add_new(0x00081040, "LO", "")  # Institutional Department Name, empty
    return ds


@pytest.mark.parametrize("implicit", [False, True])
def test_raw_fast_path_equals_the_decoded_path(tmp_path: Path, implicit: bool) -> None:
    """Each file de-identified as read (raw bytes rewritten) and after decoding every element
    (pydicom's values changed): the same bytes written."""
    write_patient(tmp_path / "in", SyntheticPatient(), small_options(timepoints_h=(24.0,)))
    compared = 0
    for path in sorted((tmp_path / "in").rglob("*.dcm")):
        source = _odd_values(pydicom.dcmread(path))
        if implicit:
            source.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        source.save_as(path)
        deid = compile_deidentifier(make_profile(), settings())
        outputs = []
        for decode in (False, True):
            ds = read_dataset(path)
            if decode:
                for _ in ds.iterall():
                    pass
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                deid.apply(ds)
                out = tmp_path / f"out-{decode}.dcm"
                ds.save_as(out)
            outputs.append(out.read_bytes())
        assert outputs[0] == outputs[1], path.name
        compared += 1
    assert compared == 4


#: What pydicom imports at start-up only to decode or fetch pixel data (optional for pydicom):
#: `reluth images deidentify` never decodes pixels, its process imports none of them.
PIXEL_STACK = ("numpy", "requests", "PIL", "jpeg_ls", "pylibjpeg", "openjpeg", "gdcm", "rle")

_CLI_PROCESS = """
import io, json, sys
from contextlib import redirect_stdout
sys.argv = ["reluth", "images", "deidentify", *{args!r}]
from reluth.cli import main
out = io.StringIO()
with redirect_stdout(out):
    try:
        main()
    except SystemExit as exc:
        code = exc.code
report = json.loads(out.getvalue())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {stack!r})
deferred = {{m: type(sys.modules.get(m)).__name__ for m in ("pydicom.examples", "urllib.request")}}
import pydicom
metadata = "importlib.metadata" in sys.modules
print(json.dumps({{"exit": code, "report": report, "loaded": loaded, "deferred": deferred,
    "metadata": metadata, "version": pydicom.__version__,
    "examples": str(pydicom.examples.get_path("ct").name)}}))
"""


def test_the_cli_process_skips_the_pixel_stack_and_writes_the_same_bytes(
    mixed_input: Path, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    key = tmp_path / "site.key"
    key.write_bytes(settings().key)
    mine = settings(cycle=None)
    expected, files_expected = _run_with(mixed_input, tmp_path / "in-process", mine)
    out = tmp_path / "cli"
    args = [str(mixed_input), str(out), "--patient-id", mine.patient_id, "--key", str(key)]
    done = subprocess.run(
        [sys.executable, "-c", _CLI_PROCESS.format(args=[*args, "--json"], stack=PIXEL_STACK)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] == 0
    assert result["loaded"] == []  # numpy, requests, PIL, ... not imported at all
    # nor pydicom's examples, urllib.request or importlib.metadata, until used
    assert result["deferred"] == {"pydicom.examples": "_Deferred", "urllib.request": "_Deferred"}
    assert result["metadata"] is False
    assert result["version"] == pydicom.__version__
    assert result["examples"] == "CT_small.dcm"  # imported on first use, works as usual
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert files == files_expected  # same names, same bytes
    assert result["report"]["written"] == expected.written > 100
    shown = [(f["source"], f["status"], f["output"]) for f in result["report"]["files"]]
    assert shown == [(f.source, f.status, f.output) for f in expected.files]


def test_a_deferred_module_is_imported_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import xmlrpc

    from reluth.imaging import cli

    name = "xmlrpc.server"
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delattr(xmlrpc, "server", raising=False)
    cli._defer(name)
    stub = sys.modules[name]
    assert isinstance(stub, cli._Deferred) and xmlrpc.server is stub  # type: ignore[attr-defined]
    import xmlrpc.server  # an import statement does not load it

    assert sys.modules[name] is stub
    assert stub.SimpleXMLRPCServer.__module__ == name  # the first attribute loads the real one
    assert not isinstance(sys.modules[name], cli._Deferred)
    assert xmlrpc.server.SimpleXMLRPCServer is stub.SimpleXMLRPCServer


def test_pydicom_version_as_importlib_metadata_reads_it() -> None:
    from importlib.metadata import version

    from reluth.imaging import cli

    assert cli._pydicom_version() == version("pydicom") == pydicom.__version__


def _run_with(src: Path, out: Path, deid: DeidSettings) -> tuple[BatchReport, dict[str, bytes]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = deidentify_tree(src, out, deid, workers=1)
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    return report, files
