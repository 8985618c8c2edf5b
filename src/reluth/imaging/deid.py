"""Dosimetry-safe de-identification of one DICOM dataset (PS3.15 Annex E).

Pure with respect to the outside world: ``deidentify_dataset`` changes a pydicom Dataset in
memory; reading, writing and batching live in ``batch.py``. Everything that must be identical
for one patient across batches, days and sites (the whole-day date offset, the new UIDs) is a
keyed HMAC of the trial patient ID or of the original UID, so no lookup table is needed and
nothing identifying leaves the site.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from reluth.errors import ValidationError
from reluth.imaging.profile import BASIC_PROFILE_CODE, OPTION_CODES, Profile

# Whole-day offsets are drawn in [-MAX, -MIN] days: dates move back 1 to 10 years.
MIN_OFFSET_DAYS = 366
MAX_OFFSET_DAYS = 3652
METHOD_NAME = "RELUTH PS3.15 E.1-1"
SHIFT_ID_PREFIX = "DATE-SHIFT-ID "
DUMMY_TEXT = "REMOVED"
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
PATIENT_ID_RE = re.compile(r"^C\d{2}-\d{4}$")

_DATE_VRS = frozenset({"DA", "DT"})
_BINARY_VRS = frozenset({"US", "UL", "SS", "SL", "FL", "FD", "UV", "SV", "AT"})
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS"})
_MAX_LEN = {"SH": 16, "LO": 64, "CS": 16, "ST": 1024, "LT": 10240, "PN": 64, "AE": 16}

# Clean Descriptors (113105): a description keeps only words of this technical vocabulary and
# short numbers (time points, kernels, energies); everything else (names, IDs, free text) goes.
_SAFE_WORDS = frozenset(
    """spect ct nm pet lu lu177 177lu 177 lutetium lutathera dotatate tomo tomography recon
    reconstructed reconstruction osem mlem flash3d flash astonish evolution ac sc nc rr attn scat
    decy corrected uncorrected wb whole body abdomen thorax chest pelvis liver kidney kidneys
    tumor tumour low dose ld megp me melp lehr le he peak scatter emission transmission quant
    quantitative qspect xspect bqml cycle timepoint tp post pre injection day days hour hours h
    iter iterations subsets filter gauss gaussian butterworth head neck axial coronal sagittal mip
    topogram scout helical spiral standard soft tissue bone lung kernel window windows keV kev
    em1 em2 sc1 sc2 lower upper mbq gbq fov ctac attenuation map mumap umap series study
    dosimetry""".lower().split()
)
_SAFE_TOKEN = re.compile(
    r"^(\d{1,4}(\.\d+)?(h|hr|hrs|d|j|min|s|mm|kev|mbq|gbq|%)?|[a-z]\d{1,3}[a-z]?|c\d)$"
)


class DeidError(Exception):
    """A file that cannot be de-identified safely (reported and skipped by the batch)."""


@dataclass(frozen=True)
class DeidSettings:
    """Everything a worker needs; picklable so batches can run in several processes."""

    key: bytes
    patient_id: str
    options: tuple[str, ...]
    cycle: int | None = None
    protocol_id: str = "ReLUTH"


@dataclass
class DeidOutcome:
    burned_in_review: str | None = None
    dates_shifted: int = 0
    uids_mapped: int = 0
    removed: int = 0
    notes: list[str] = field(default_factory=list)


def read_key(path: Path) -> bytes:
    """The site's secret: a file of at least 32 bytes, never committed, never sent centrally."""
    try:
        key = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValidationError("--key", f"key file not found: {path}", "an existing file") from None
    except OSError as exc:
        raise ValidationError("--key", f"cannot read key file: {exc}", "a readable file") from None
    key = key.strip()
    if len(key) < 32:
        raise ValidationError(
            "--key",
            f"key file holds {len(key)} bytes",
            "at least 32 bytes of secret (e.g. `head -c 48 /dev/urandom | base64 > site.key`)",
        )
    return key


def check_patient_id(patient_id: str) -> str:
    if not PATIENT_ID_RE.match(patient_id or ""):
        raise ValidationError(
            "--patient-id", f"not a trial patient ID: {patient_id!r}", "CNN-NNNN, e.g. C07-0012"
        )
    return patient_id


def _mac(key: bytes, label: str, text: str) -> bytes:
    return hmac.new(key, label.encode() + b"\x00" + text.encode(), hashlib.sha256).digest()


def day_offset(key: bytes, patient_id: str) -> int:
    """Whole days (negative) added to every date of this patient, whatever batch or day."""
    n = int.from_bytes(_mac(key, "reluth-date-offset", patient_id)[:8], "big")
    return -(MIN_OFFSET_DAYS + n % (MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1))


def shift_id(key: bytes, patient_id: str) -> str:
    """A public fingerprint of (key, patient): equal across files iff they were shifted alike.
    It does not reveal the offset."""
    return _mac(key, "reluth-shift-id", patient_id)[:6].hex().upper()


def map_uid(key: bytes, uid: str, patient_id: str) -> str:
    """Deterministic new UID under the 2.25 (UUID-derived integer) root, <= 44 characters.
    Keyed by the patient too: two patients never share a UID, even from a mislabelled copy."""
    uid = uid.strip().rstrip("\x00")
    if not uid:
        return uid
    mac = _mac(key, "reluth-uid", patient_id + "\x00" + uid)
    return "2.25." + str(int.from_bytes(mac[:16], "big"))


def shift_date(value: str, days: int) -> str | None:
    """YYYYMMDD shifted by whole days; None if the value cannot be shifted exactly."""
    text = value.strip()
    if not text:
        return text
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return (day + dt.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_datetime(value: str, days: int) -> str | None:
    """DT value: the YYYYMMDD part shifted, time of day, fraction and UTC offset untouched.
    A DT coarser than a day cannot be shifted exactly: None."""
    text = value.strip()
    if not text:
        return text
    shifted = shift_date(text[:8], days) if len(text) >= 8 else None
    if shifted is None:
        return None
    rest = text[8:]
    if rest and not re.fullmatch(r"\d{0,6}(\.\d{1,6})?([+-]\d{4})?", rest):
        return None
    return shifted + rest


def clean_text(value: str, max_len: int = 64) -> str:
    tokens = re.split(r"[^0-9A-Za-z.%]+", value)
    kept = [t for t in tokens if t and (t.lower() in _SAFE_WORDS or _SAFE_TOKEN.match(t.lower()))]
    return " ".join(kept)[:max_len].strip()


def _dummy(vr: str) -> object:
    if vr in ("DA",):
        return "19000101"
    if vr == "DT":
        return "19000101000000"
    if vr == "TM":
        return "000000"
    if vr in ("DS", "IS"):
        return "0"
    if vr == "AS":
        return "000Y"
    if vr in _BINARY_VRS:
        return 0
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        return b""
    if vr == "SQ":
        return Sequence()
    return DUMMY_TEXT


_INSPECTED_VRS = frozenset({"SQ", "DA", "DT", "PN"})
_CLEANED_VRS = _DATE_VRS | _TEXT_VRS | {"SQ"}


def _raw_strings(elem: object) -> list[str] | None:
    """Values of an undecoded ASCII element (UI, DA, DT), or None to take the slow path."""
    value = getattr(elem, "value", None)
    if not getattr(elem, "is_raw", False) or not isinstance(value, bytes):
        return None
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    text = text.rstrip(" \x00")
    return text.split("\\") if text else []


def _raw_replace(elem: Any, values: list[str], pad: bytes) -> Any:
    data = "\\".join(values).encode("ascii")
    if len(data) % 2:
        data += pad
    return elem._replace(value=data, length=len(data))


def _vr_of(tag: int, elem: object) -> str:
    """The element's VR; for implicit VR or an explicit 'UN' of a known attribute, the
    dictionary's (a date sent as UN is still a date to shift)."""
    vr = getattr(elem, "VR", None)
    if vr and vr != "UN":
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return str(vr or "UN")


def _empty(vr: str) -> object:
    if vr == "SQ":
        return Sequence()
    if vr in _BINARY_VRS:
        return None
    return ""


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _set_values(elem: DataElement, values: list[str]) -> None:
    elem.value = values[0] if len(values) == 1 else values


class _Walker:
    def __init__(self, profile: Profile, settings: DeidSettings, outcome: DeidOutcome) -> None:
        self.profile = profile
        self.settings = settings
        self.outcome = outcome
        self.days = day_offset(settings.key, settings.patient_id)
        self._uids: dict[str, str] = {}

    def uid(self, uid: str) -> str:
        new = self._uids.get(uid)
        if new is None:
            new = self._uids[uid] = map_uid(self.settings.key, uid, self.settings.patient_id)
            self.outcome.uids_mapped += 1
        return new

    def walk(self, ds: Dataset) -> None:
        raw = ds._dict  # elements stay undecoded (and are written back as read) unless needed
        for tag in list(raw):
            if tag in PIXEL_TAGS:
                continue
            if (tag & 0xFFFF) == 0 and (tag >> 16) != 0x0002:
                del ds[tag]  # group lengths: stale once values change
                continue
            action = self.profile.action(tag)
            if action == "X":
                del raw[tag]
                self.outcome.removed += 1
                continue
            current = raw[tag]
            vr = _vr_of(tag, current)
            if action is None or action == "K":
                if vr not in _INSPECTED_VRS or (vr == "PN" and action == "K"):
                    continue  # kept as read: never decoded, written back byte for byte
            elif action == "Z":
                if current.is_raw:
                    raw[tag] = current._replace(value=b"", length=0)  # type: ignore[union-attr]
                else:
                    ds[tag] = DataElement(tag, vr, _empty(vr))
                continue
            elif action == "C" and vr not in _CLEANED_VRS:
                continue  # times of day (whole-day shift), timezone offsets, numbers: unchanged
            if current.is_raw and (
                (action == "U" and self._raw_uids(raw, tag))
                or (vr in _DATE_VRS and action != "D" and self._raw_dates(raw, tag, vr))
            ):
                continue
            elem = ds[tag]
            if action is None:
                self._unlisted(ds, elem)
            elif action == "D":
                elem.value = self._date_or_dummy(elem)
            elif action == "U":
                _set_values(elem, [self.uid(v) for v in _values(elem)])
            elif action == "C":
                self._clean(ds, elem)
            else:  # K
                self._keep(elem)

    def _raw_uids(self, raw: MutableMapping[Any, Any], tag: int) -> bool:
        values = _raw_strings(raw[tag])
        if values is None:
            return False
        raw[tag] = _raw_replace(raw[tag], [self.uid(v) for v in values], b"\0")
        return True

    def _raw_dates(self, raw: MutableMapping[Any, Any], tag: int, vr: str) -> bool:
        values = _raw_strings(raw[tag])
        if values is None:
            return False
        fn = shift_date if vr == "DA" else shift_datetime
        new: list[str] = []
        for v in values:
            shifted = fn(v, self.days)
            if shifted is None:
                self.outcome.notes.append(f"emptied unshiftable {vr} {tag:08X}: format")
                shifted = ""
            new.append(shifted)
        raw[tag] = _raw_replace(raw[tag], new, b" ")
        self.outcome.dates_shifted += len(new)
        return True

    def _date_or_dummy(self, elem: DataElement) -> object:
        if elem.VR in _DATE_VRS and "LM" in self.settings.options:
            self._shift(elem)
            return elem.value
        return _dummy(elem.VR)

    def _keep(self, elem: DataElement) -> None:
        if elem.VR == "SQ":
            for item in elem.value:
                self.walk(item)
        elif elem.VR in _DATE_VRS:
            self._shift(elem)

    def _unlisted(self, ds: Dataset, elem: DataElement) -> None:
        vr = elem.VR
        if vr == "SQ":
            for item in elem.value:
                self.walk(item)
        elif vr in _DATE_VRS:
            self._shift(elem)
        elif vr == "PN" and elem.tag != 0x00100010 and _values(elem):
            # A person's name the table does not list (retired or new attribute): not kept.
            elem.value = ""
            self.outcome.notes.append(f"emptied unlisted person name {elem.tag}")

    def _clean(self, ds: Dataset, elem: DataElement) -> None:
        vr = elem.VR
        if vr in _DATE_VRS:
            self._shift(elem)
        elif vr == "SQ":
            del ds[elem.tag]  # coded or structured content we cannot vouch for: removed
            self.outcome.removed += 1
        elif vr in _TEXT_VRS:
            max_len = _MAX_LEN.get(vr, 1024)
            _set_values(elem, [clean_text(v, max_len) for v in _values(elem)])
        # TM (time of day under a whole-day shift), timezone offsets, numbers: unchanged.

    def _shift(self, elem: DataElement) -> None:
        fn = shift_date if elem.VR == "DA" else shift_datetime
        new: list[str] = []
        for v in _values(elem):
            shifted = fn(v, self.days)
            if shifted is None:
                # Cannot be shifted exactly: emptied rather than kept or guessed.
                self.outcome.notes.append(f"emptied unshiftable {elem.VR} {elem.tag}: format")
                shifted = ""
            new.append(shifted)
        if new:
            _set_values(elem, new)
        self.outcome.dates_shifted += len(new)


def deidentify_dataset(ds: Dataset, profile: Profile, settings: DeidSettings) -> DeidOutcome:
    """Apply the profile and the options to ``ds`` in place; write the trial pseudonym and the
    de-identification attributes. Raises DeidError if the result would be unsafe."""
    outcome = DeidOutcome()
    walker = _Walker(profile, settings, outcome)
    walker.walk(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for tag in (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102):
            if tag in meta:
                del meta[tag]
        if "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = walker.uid(str(meta.MediaStorageSOPInstanceUID))
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        for tag, vr, value in _written_elements(settings):
            ds[tag] = DataElement(tag, vr, value)
    else:
        for elem in _written_raw(settings, implicit, little):
            ds._dict[elem.tag] = elem
    burned = str(ds.get("BurnedInAnnotation", "")).upper()
    modality = str(ds.get("Modality", "")).upper()
    if burned == "YES":
        outcome.burned_in_review = "BurnedInAnnotation is YES: pixel data must be reviewed"
    elif not burned and modality in ("SC", "OT", "US", "XC", "ES", "DOC"):
        outcome.burned_in_review = f"modality {modality} without BurnedInAnnotation: review pixels"
    return outcome


@functools.lru_cache(maxsize=64)
def _written_raw(
    settings: DeidSettings, implicit: bool, little: bool
) -> tuple[DataElement | RawDataElement, ...]:
    """The same elements pre-encoded (text as raw bytes in the file's encoding), so the
    writer copies them instead of encoding them again for every file."""
    out: list[DataElement | RawDataElement] = []
    for tag, vr, value in _written_elements(settings):
        if vr == "SQ":
            # encoded once by pydicom itself (defined lengths), kept as raw bytes
            buf = DicomBytesIO()
            buf.is_little_endian = little
            buf.is_implicit_VR = implicit
            write_data_element(buf, DataElement(tag, vr, value))
            data = buf.getvalue()[8 if implicit else 12 :]
            out.append(RawDataElement(BaseTag(tag), vr, len(data), data, 0, implicit, little))
            continue
        text = "\\".join(value) if isinstance(value, list) else str(value)
        data = text.encode("ascii")
        if len(data) % 2:
            data += b" "
        out.append(RawDataElement(BaseTag(tag), vr, len(data), data, 0, implicit, little))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _written_elements(settings: DeidSettings) -> tuple[tuple[int, str, object], ...]:
    """What the de-identifier writes into every file of a patient: the trial pseudonym, the
    de-identification attributes, and the Clinical Trial Subject/Series modules (who this is
    in the trial, not in the hospital). Built once per patient and options."""
    pid = settings.patient_id
    codes = Sequence()
    for code, meaning in [BASIC_PROFILE_CODE, *(OPTION_CODES[o] for o in settings.options)]:
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        codes.append(item)
    out: list[tuple[int, str, object]] = [
        (0x00100010, "PN", pid),  # Patient's Name
        (0x00100020, "LO", pid),  # Patient ID
        (0x00120010, "LO", settings.protocol_id),  # Clinical Trial Sponsor Name
        (0x00120020, "LO", settings.protocol_id),  # Clinical Trial Protocol ID
        (0x00120021, "LO", settings.protocol_id),  # Clinical Trial Protocol Name
        (0x00120030, "LO", pid.split("-")[0]),  # Clinical Trial Site ID
        (0x00120031, "LO", ""),  # Clinical Trial Site Name
        (0x00120040, "LO", pid),  # Clinical Trial Subject ID
        (0x00120062, "CS", "YES"),  # Patient Identity Removed
        (0x00120063, "LO", [METHOD_NAME, SHIFT_ID_PREFIX + shift_id(settings.key, pid)]),
        (0x00120064, "SQ", codes),  # De-identification Method Code Sequence
    ]
    if settings.cycle is not None:
        out.append((0x00120050, "LO", f"C{settings.cycle}"))  # Clinical Trial Time Point ID
    if "LM" in settings.options:
        out.append((0x00280303, "CS", "MODIFIED"))  # Longitudinal Temporal Info. Modified
    return tuple(out)
