"""Write a de-identified dataset the way pydicom would, faster.

Most elements of a de-identified file are untouched: pydicom keeps them as raw bytes, and
this writer copies those bytes with their header in one call each (no intermediate buffers),
handing everything else (changed, decoded, undefined-length elements) to pydicom's own
element writer. Any case it does not cover (no file meta, big endian, deflate, re-encoding,
character set change) goes to ``Dataset.save_as`` unchanged. Byte-for-byte equality with
``save_as`` is tested on pydicom's test files and the synthetic series.
"""

from __future__ import annotations

import io
import os
from struct import Struct, pack
from typing import Any, BinaryIO, cast

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO, DicomFileLike, DicomIO
from pydicom.filewriter import write_data_element, write_file_meta_info, write_sequence_item
from pydicom.tag import BaseTag, tag_in_exception

_LENGTH_32 = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}
)
# element headers, little endian: implicit VR; explicit VR with 16-bit / 32-bit length
_IMPLICIT = Struct("<HHL").pack
_EXPLICIT_16 = Struct("<HH2sH").pack
_EXPLICIT_32 = Struct("<HH2sHL").pack
_META_TEXT_PAD = {"UI": b"\0", "SH": b" ", "AE": b" "}


def _fast_path(ds: Dataset, tags: list[BaseTag] | None = None) -> bool:
    """True if the fast writer covers ds (tags: its tags in order, if already sorted)."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_private or syntax.is_deflated or not syntax.is_little_endian:
        return False
    if not getattr(ds, "preamble", None) or len(ds.preamble) != 128:
        return False
    if ds.original_encoding != (syntax.is_implicit_VR, True):
        return False
    if ds.original_character_set != ds._character_set:
        return False
    for tag in tags if tags is not None else sorted(ds._dict, key=int):
        if (tag >> 16) > 2:
            return True  # sorted: no command (0000) or file meta (0002) element in the dataset
        if (tag >> 16) != 1:
            return False
    return True


def write_dataset_file(ds: Dataset, fh: BinaryIO, source: int | None = None) -> None:
    """Part 10 file: preamble, file meta, then the dataset in its transfer syntax. source: a
    descriptor of the file ds was read from, for copying its deferred values (else opened)."""
    tags = sorted(ds._dict, key=int)
    if not _fast_path(ds, tags):
        ds.save_as(fh)
        return
    meta = ds.file_meta
    syntax = meta[0x00020010].value  # Transfer Syntax UID
    implicit = bool(syntax.is_implicit_VR)
    pixels = ds._dict.get(BaseTag(0x7FE00010))
    if pixels is not None and (not pixels.is_raw or pixels.value is not None):
        # as pydicom's writer does (a deferred value is left unread: copied below)
        ds["PixelData"].is_undefined_length = syntax.is_compressed
    fp = DicomFileLike(fh)
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    fh.write(ds.preamble)
    fh.write(b"DICM")
    encoded = _meta_bytes(meta)
    if encoded is None:
        write_file_meta_info(fp, meta, enforce_standard=False)
    else:
        fh.write(encoded)
    fp.is_implicit_VR = implicit
    encoding = ds.get("SpecificCharacterSet", default_encoding)
    _write_elements(fp, fh, ds, implicit, encoding, tags, source)


def _meta_bytes(meta: Dataset) -> bytes | None:
    """The file meta group as ``write_file_meta_info(enforce_standard=False)`` writes it (group
    length recomputed when present), for the plain single values a file meta holds (UL, OB, UI,
    SH, AE); None for anything else, which pydicom then writes itself."""
    parts: list[bytes] = []
    has_length = False
    elements = meta._dict
    for tag in sorted(elements, key=int):
        if tag == 0x00020000:
            has_length = True
            continue
        elem = elements[tag]
        vr, value = elem.VR, elem.value
        if (tag >> 16) != 0x0002 or not vr or len(vr) != 2:
            return None
        if elem.is_raw:
            if type(value) is not bytes or (vr not in _LENGTH_32 and len(value) > 0xFFFF):
                return None
            data = value  # as read, as pydicom writes a raw element
        elif vr == "UL" and type(value) is int:
            data = pack("<L", value)
        elif vr == "OB" and type(value) is bytes:
            data = value + b"\0" if len(value) % 2 else value
        elif vr in _META_TEXT_PAD and isinstance(value, str) and value.isascii():
            if "\\" in value:
                return None  # several values
            data = value.encode("ascii")
            if len(data) % 2:
                data += _META_TEXT_PAD[vr]
        else:
            return None
        if vr in _LENGTH_32:
            parts.append(_EXPLICIT_32(tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(data)))
        else:
            parts.append(_EXPLICIT_16(tag >> 16, tag & 0xFFFF, vr.encode(), len(data)))
        parts.append(data)
    body = b"".join(parts)
    if has_length:
        return _EXPLICIT_16(0x0002, 0x0000, b"UL", 4) + pack("<L", len(body)) + body
    return body


def _write_elements(
    fp: DicomIO,
    fh: Any,
    ds: Dataset,
    implicit: bool,
    encoding: object,
    tags: list[BaseTag] | None = None,
    source: int | None = None,
) -> None:
    """The elements of ds in tag order: raw ones copied with their header, sequences item by
    item through this same loop, anything else by pydicom's element writer."""
    elements = ds._dict
    write = fh.write
    filename = getattr(ds, "filename", None)
    for tag in tags if tags is not None else sorted(elements, key=int):
        if (tag & 0xFFFF) == 0 and (tag >> 16) > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = elements[tag]
        if isinstance(elem, RawDataElement):
            value = elem.value
            length = elem.length
            if length != 0xFFFFFFFF and type(value) is bytes:
                n = len(value)
                if implicit:
                    write(_IMPLICIT(tag >> 16, tag & 0xFFFF, n))
                    write(value)
                    continue
                vr = elem.VR
                if vr in _LENGTH_32:
                    write(_EXPLICIT_32(tag >> 16, tag & 0xFFFF, vr.encode(), 0, n))
                    write(value)
                    continue
                if vr and len(vr) == 2 and n <= 0xFFFF:
                    write(_EXPLICIT_16(tag >> 16, tag & 0xFFFF, vr.encode(), n))
                    write(value)
                    continue
            elif (
                value is None
                and 0 < length != 0xFFFFFFFF
                and isinstance(filename, str)
                and (implicit or elem.VR in _LENGTH_32)
            ):
                # a deferred value (pixel data): header, then the bytes copied from the source
                if implicit:
                    write(_IMPLICIT(tag >> 16, tag & 0xFFFF, length))
                else:
                    vr_bytes = str(elem.VR).encode()
                    write(_EXPLICIT_32(tag >> 16, tag & 0xFFFF, vr_bytes, 0, length))
                _copy_range(filename, elem.value_tell, length, fh, source)
                continue
        elif elem.VR == "SQ" and not elem.is_buffered:
            with tag_in_exception(tag):
                _write_sequence(fp, cast(DataElement, elem), implicit, encoding)
            continue
        with tag_in_exception(tag):
            write_data_element(fp, ds.get_item(tag), encoding)  # type: ignore[arg-type]


def _write_sequence(fp: DicomIO, elem: DataElement, implicit: bool, encoding: object) -> None:
    """As pydicom writes a sequence (same lengths, delimiters and item encodings)."""
    encodings = convert_encodings(encoding or [default_encoding])  # type: ignore[arg-type]
    body = DicomBytesIO()
    body.is_little_endian = True
    body.is_implicit_VR = implicit
    for item in elem.value:
        if item.original_encoding != (implicit, True) or (
            item.original_character_set != item._character_set
        ):
            write_sequence_item(body, item, encodings)  # re-encoding: pydicom's own way
            continue
        inner = DicomBytesIO()
        inner.is_little_endian = True
        inner.is_implicit_VR = implicit
        _write_elements(inner, inner, item, implicit, item.get("SpecificCharacterSet", encodings))
        data = inner.getvalue()
        undefined_item = getattr(item, "is_undefined_length_sequence_item", False)
        body.write(pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF if undefined_item else len(data)))
        body.write(data)
        if undefined_item:
            body.write(pack("<HHL", 0xFFFE, 0xE00D, 0))
    value = body.getvalue()
    undefined = elem.is_undefined_length
    size = 0xFFFFFFFF if undefined else len(value)
    tag = int(elem.tag)
    if implicit:
        fp.write(pack("<HHL", tag >> 16, tag & 0xFFFF, size))
    else:
        fp.write(pack("<HH2sHL", tag >> 16, tag & 0xFFFF, b"SQ", 0, size))
    fp.write(value)
    if undefined:
        fp.write(pack("<HHL", 0xFFFE, 0xE0DD, 0))


def _copy_range(source: str, offset: int, length: int, fh: BinaryIO, fd: int | None = None) -> None:
    """Copy bytes [offset, offset+length) of source (fd: already open on it) to fh: in the
    kernel where possible."""
    if fd is None:
        with open(source, "rb", buffering=0) as src:
            _copy_fd(source, src.fileno(), offset, length, fh)
    else:
        _copy_fd(source, fd, offset, length, fh)


def _copy_fd(source: str, src: int, offset: int, length: int, fh: BinaryIO) -> None:
    copy = getattr(os, "copy_file_range", None)
    try:
        dst_fd = fh.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        dst_fd = -1
    if copy is not None and dst_fd >= 0:
        fh.flush()
        done = 0
        try:
            while done < length:
                n = copy(src, dst_fd, length - done, offset + done)
                if n == 0:
                    break
                done += n
        except OSError:
            pass  # e.g. across file systems that refuse it: finish in user space
        if done == length:
            return
        offset, length = offset + done, length - done
    os.lseek(src, offset, os.SEEK_SET)
    while length > 0:
        chunk = os.read(src, min(length, 1 << 20))
        if not chunk:
            raise OSError(f"{source}: ended {length} bytes early")
        fh.write(chunk)
        length -= len(chunk)
