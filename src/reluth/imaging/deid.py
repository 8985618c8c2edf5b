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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
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
    dosimetry"""
    # ROI names of dosimetry VOIs (RT Structure Set ROI Name is cleaned, PS3.15 E.1-1), with
    # laterality in words: the organ table of reluth.dosimetry maps them to organs
    """ left right lt rt bilateral both gauche droit droite links rechts sinistro destro
    izquierdo derecho rein reins niere nieren spleen rate milz liver foie leber organ organs
    lesion lesions les gtv met mets metastasis metastases node nodule target tumeur external
    outline remainder corps marrow""".lower().split()
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
        raise invalid(
            "--key",
            "key_file_not_found",
            N_("key file not found: {path}"),
            N_("an existing file"),
            path=str(path),
        ) from None
    except OSError as exc:
        raise invalid(
            "--key",
            "key_file_unreadable",
            N_("cannot read key file: {problem}"),
            N_("a readable file"),
            problem=str(exc),
        ) from None
    key = key.strip()
    if len(key) < 32:
        raise invalid(
            "--key",
            "key_too_short",
            N_("key file holds {n} bytes"),
            N_("at least 32 bytes of secret (e.g. `head -c 48 /dev/urandom | base64 > site.key`)"),
            n=len(key),
        )
    return key


def check_patient_id(patient_id: str) -> str:
    if not PATIENT_ID_RE.match(patient_id or ""):
        raise invalid(
            "--patient-id",
            "not_a_patient_id",
            N_("not a trial patient ID: “{value}”"),
            N_("CNN-NNNN, e.g. C07-0012"),
            value=patient_id,
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


# What the walk does to one element, decided once per (tag, VR as read) from the profile's
# action and the VR (Deidentifier._compile), then looked up for every element of every file.
_KEEP = 0  # written back as read, never decoded
_GROUP_LENGTH = 1  # stale once values change: dropped
_REMOVE = 2  # X
_EMPTY = 3  # Z
_UID = 4  # U
_DATE_DA = 5  # shifted by whole days (K, C or unlisted)
_DATE_DT = 6
_DUMMY = 7  # D (a date under Modified Dates is shifted instead)
_CLEAN = 8  # C on text: Clean Descriptors vocabulary
_SEQUENCE = 9  # K or unlisted sequence: its items are walked
_REMOVE_SEQUENCE = 10  # C on a sequence: coded or structured content we cannot vouch for
_UNLISTED_PN = 11  # a person name the table does not list: emptied
_SINGLE_VALUED = frozenset({"ST", "LT", "UT"})  # a backslash is text, not a value delimiter
_REWRITTEN = frozenset({_UID, _DATE_DA, _DATE_DT, _CLEAN})  # done on raw bytes where ASCII
_META_REMOVED = tuple(
    BaseTag(t) for t in (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)
)
_MEDIA_SOP_INSTANCE = BaseTag(0x00020003)


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


def _encode_values(values: list[str], pad: bytes) -> bytes:
    data = "\\".join(values).encode("ascii")
    return data + pad if len(data) % 2 else data


def _with_value(elem: Any, data: bytes) -> RawDataElement:
    """The raw element with another value (and its length), as read otherwise."""
    tag, vr, _, _, tell, implicit, little, is_raw, buffered = elem
    return RawDataElement._make(
        (tag, vr, len(data), data, tell, implicit, little, is_raw, buffered)
    )


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


def peek(ds: Dataset, tag: int) -> Any:
    """The value of one element as pydicom converts it, without converting it in the dataset:
    an element only read stays raw, so the writer copies its bytes instead of encoding them
    again. Single US, CS and UI values are decoded here (the common, cheap case)."""
    elem = ds._dict.get(BaseTag(tag))
    if not isinstance(elem, RawDataElement):
        return None if elem is None else elem.value
    text = _plain_text(tag, elem)
    if text is not None:
        return UID(text) if _vr_of(tag, elem) == "UI" else text
    value = elem.value
    if value is None:
        return None  # a deferred (large) value is never needed here
    if len(value) == 2 and _vr_of(tag, elem) == "US":
        return int.from_bytes(value, "little" if elem.is_little_endian else "big")
    return convert_raw_data_element(elem, ds=ds).value


def peek_text(ds: Dataset, tag: int) -> str:
    """str(peek(ds, tag)), or "" if absent or empty: without building a UID object."""
    elem = ds._dict.get(BaseTag(tag))
    if isinstance(elem, RawDataElement):
        text = _plain_text(tag, elem)
        if text is not None:
            return text
    value = peek(ds, tag)
    return "" if value is None else str(value)


def _plain_text(tag: int, elem: RawDataElement) -> str | None:
    """A raw single CS or UI value of ASCII characters, as pydicom decodes it; else None."""
    value = elem.value
    if not value or not value.isascii() or _vr_of(tag, elem) not in ("CS", "UI"):
        return None
    text = value.decode("ascii").rstrip(" \x00")
    return text if text and "\\" not in text else None


class Deidentifier:
    """The profile and one patient's settings compiled once, then applied to every file of
    a batch: per-(tag, VR) operations, the whole-day offset, keyed MAC states that are copied
    rather than re-keyed for each UID, and the trial attributes encoded once per encoding."""

    def __init__(self, profile: Profile, settings: DeidSettings) -> None:
        self.profile = profile
        self.settings = settings
        self.days = day_offset(settings.key, settings.patient_id)
        # the keyed state after the constant prefix of map_uid's message (HMAC is a stream)
        self._uid_mac = hmac.new(
            settings.key, b"reluth-uid\x00" + settings.patient_id.encode() + b"\x00", "sha256"
        )
        self._uids: dict[str, str] = {}
        self._ops: dict[tuple[int, str | None], int] = {}
        # raw value -> (new raw value, number of values) per (tag, VR): the same dates and
        # UIDs recur in every file of a series
        self._rewritten: dict[tuple[tuple[int, str | None], bytes], tuple[bytes, int]] = {}
        self._written: dict[tuple[bool, bool], tuple[DataElement | RawDataElement, ...]] = {}

    def uid(self, uid: str) -> str:
        """map_uid(key, uid, patient) without re-keying the MAC; remembered for the batch
        (study, series and frame of reference UIDs repeat in every file)."""
        new = self._uids.get(uid)
        if new is None:
            text = uid.strip().rstrip("\x00")
            if text:
                mac = self._uid_mac.copy()
                mac.update(text.encode())
                new = "2.25." + str(int.from_bytes(mac.digest()[:16], "big"))
            else:
                new = text
            if len(self._uids) > 100_000:
                self._uids.clear()
            self._uids[uid] = new
        return new

    def _compile(self, tag: int, elem: object) -> int:
        """The operation for this tag and VR: PS3.15 action first, then what the VR needs."""
        if tag in PIXEL_TAGS:
            return _KEEP
        if (tag & 0xFFFF) == 0 and (tag >> 16) != 0x0002:
            return _GROUP_LENGTH
        action = self.profile.action(tag)
        if action == "X":
            return _REMOVE
        vr = _vr_of(tag, elem)
        date = _DATE_DA if vr == "DA" else _DATE_DT if vr == "DT" else None
        if action == "Z":
            return _EMPTY
        if action == "U":
            return _UID
        if action == "D":
            return _DUMMY
        if action == "C":
            if date is not None:
                return date
            if vr == "SQ":
                return _REMOVE_SEQUENCE
            # times of day (whole-day shift), timezone offsets, numbers: unchanged
            return _CLEAN if vr in _TEXT_VRS else _KEEP
        # K, or an attribute the table does not list
        if vr == "SQ":
            return _SEQUENCE
        if date is not None:
            return date
        if vr == "PN" and action is None:
            return _UNLISTED_PN
        return _KEEP

    def apply(self, ds: Dataset) -> DeidOutcome:
        """Apply the profile and the options to ``ds`` in place; write the trial pseudonym and
        the de-identification attributes."""
        outcome = DeidOutcome()
        self.walk(ds, outcome)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            held = meta._dict
            for removed in _META_REMOVED:  # AE titles and the private information of the sender
                if removed in held:
                    del held[removed]
            elem = held.get(_MEDIA_SOP_INSTANCE)
            if elem is not None:
                values = _raw_strings(elem)
                if values is not None and len(values) == 1:
                    held[_MEDIA_SOP_INSTANCE] = _with_value(
                        elem, _encode_values([self.uid(values[0])], b"\0")
                    )
                else:
                    meta.MediaStorageSOPInstanceUID = self.uid(str(meta[_MEDIA_SOP_INSTANCE].value))
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit is None or little is None:
            for tag, vr, value in _written_elements(self.settings):
                ds[tag] = DataElement(tag, vr, value)
        else:
            written = self._written.get((implicit, little))
            if written is None:
                written = self._written[(implicit, little)] = _written_raw(
                    self.settings, implicit, little
                )
            raw = ds._dict
            for elem in written:
                raw[elem.tag] = elem
        burned = peek_text(ds, 0x00280301).upper()  # Burned In Annotation
        modality = peek_text(ds, 0x00080060).upper()
        if burned == "YES":
            outcome.burned_in_review = "BurnedInAnnotation is YES: pixel data must be reviewed"
        elif not burned and modality in ("SC", "OT", "US", "XC", "ES", "DOC"):
            outcome.burned_in_review = (
                f"modality {modality} without BurnedInAnnotation: review pixels"
            )
        return outcome

    def walk(self, ds: Dataset, outcome: DeidOutcome) -> None:
        raw = ds._dict  # elements stay undecoded (and are written back as read) unless needed
        ops = self._ops
        for tag, current in list(raw.items()):
            key = (tag.real, current.VR)  # a plain int: BaseTag compares in Python, slowly
            op = ops.get(key)
            if op is None:
                op = ops[key] = self._compile(tag, current)
            if op == _KEEP:
                continue
            if op in (_REMOVE, _REMOVE_SEQUENCE):
                del raw[tag]
                outcome.removed += 1
                continue
            if op == _GROUP_LENGTH:
                del raw[tag]
                continue
            if op == _EMPTY:
                if current.is_raw:
                    raw[tag] = _with_value(current, b"")
                else:
                    vr = _vr_of(tag, current)
                    ds[tag] = DataElement(tag, vr, _empty(vr))
                continue
            if op in _REWRITTEN and current.is_raw and type(current.value) is bytes:
                # the raw bytes rewritten directly (remembered: dates and UIDs recur)
                done = self._rewritten.get((key, current.value))
                if done is None:
                    done = self._rewrite(op, key, current, outcome)
                if done is not None:
                    raw[tag] = _with_value(current, done[0])
                    if op == _UID:
                        outcome.uids_mapped += done[1]
                    elif op != _CLEAN:
                        outcome.dates_shifted += done[1]
                    continue
            # decoded by pydicom: non-ASCII text, values already decoded, sequences, dummies
            elem = ds[tag]
            if op == _UID:
                _set_values(elem, [self.uid(v) for v in _values(elem)])
            elif op in (_DATE_DA, _DATE_DT):
                self._shift(elem, outcome)
            elif op == _CLEAN:
                if elem.VR in _DATE_VRS:
                    self._shift(elem, outcome)
                elif elem.VR in _TEXT_VRS:
                    max_len = _MAX_LEN.get(elem.VR, 1024)
                    _set_values(elem, [clean_text(v, max_len) for v in _values(elem)])
            elif op == _SEQUENCE:
                for item in elem.value:
                    self.walk(item, outcome)
            elif op == _DUMMY:
                if elem.VR in _DATE_VRS and "LM" in self.settings.options:
                    self._shift(elem, outcome)
                else:
                    elem.value = _dummy(elem.VR)
            elif op == _UNLISTED_PN and elem.VR == "PN" and tag != 0x00100010 and _values(elem):
                # A person's name the table does not list (retired or new attribute): not kept.
                elem.value = ""
                outcome.notes.append(f"emptied unlisted person name {elem.tag}")

    def _rewrite(
        self, op: int, key: tuple[int, str | None], elem: Any, outcome: DeidOutcome
    ) -> tuple[bytes, int] | None:
        """New raw bytes of a plain-ASCII UID, date or descriptor value and the number of
        values, or None where pydicom must decode it (other characters, escape sequences)."""
        value: bytes = elem.value
        if not value.isascii() or b"\x1b" in value:
            return None
        tag = key[0]
        if op == _CLEAN:
            if elem.VR == "UN":
                return None  # sent as UN: pydicom's conversion also fixes the VR
            vr = _vr_of(tag, elem)
            if vr not in _TEXT_VRS:
                return None
            text = value.decode("ascii")
            parts = [text] if vr in _SINGLE_VALUED else text.split("\\")
            max_len = _MAX_LEN.get(vr, 1024)
            done = (_encode_values([clean_text(v, max_len) for v in parts], b" "), len(parts))
        else:
            text = value.decode("ascii").rstrip(" \x00")
            values = text.split("\\") if text else []
            if op == _UID:
                done = (_encode_values([self.uid(v) for v in values], b"\0"), len(values))
            else:
                vr = "DA" if op == _DATE_DA else "DT"
                fn = shift_date if op == _DATE_DA else shift_datetime
                shifted = [fn(v, self.days) for v in values]
                done = (_encode_values([v or "" for v in shifted], b" "), len(shifted))
                if None in shifted:
                    # cannot be shifted exactly: emptied rather than kept or guessed; the note
                    # belongs to this file, so this result is not remembered
                    outcome.notes.append(f"emptied unshiftable {vr} {tag:08X}: format")
                    return done
        if len(self._rewritten) > 50_000:
            self._rewritten.clear()
        self._rewritten[(key, value)] = done
        return done

    def _shift(self, elem: DataElement, outcome: DeidOutcome) -> None:
        fn = shift_date if elem.VR == "DA" else shift_datetime
        new: list[str] = []
        for v in _values(elem):
            shifted = fn(v, self.days)
            if shifted is None:
                # Cannot be shifted exactly: emptied rather than kept or guessed.
                outcome.notes.append(f"emptied unshiftable {elem.VR} {elem.tag}: format")
                shifted = ""
            new.append(shifted)
        if new:
            _set_values(elem, new)
        outcome.dates_shifted += len(new)


_COMPILED: dict[tuple[int, DeidSettings], Deidentifier] = {}


def compile_deidentifier(profile: Profile, settings: DeidSettings) -> Deidentifier:
    """The Deidentifier of (profile, settings), built on first use in each process."""
    found = _COMPILED.get((id(profile), settings))
    if found is None or found.profile is not profile:
        if len(_COMPILED) >= 16:
            _COMPILED.clear()
        found = _COMPILED[(id(profile), settings)] = Deidentifier(profile, settings)
    return found


def deidentify_dataset(ds: Dataset, profile: Profile, settings: DeidSettings) -> DeidOutcome:
    """Apply the profile and the options to ``ds`` in place; write the trial pseudonym and the
    de-identification attributes. Raises DeidError if the result would be unsafe."""
    return compile_deidentifier(profile, settings).apply(ds)


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
