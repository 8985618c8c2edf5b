"""Signed checkpoints of the audit trail, kept outside the database.

A checkpoint records the head (seq and hash), the time, the audit key's id and the number of
records of every audited table, signed with Ed25519 (RFC 8032; ``cryptography``) by a key the
sponsor keeps (``RELUTH_CHECKPOINT_KEY_FILE``, default ``<data dir>/checkpoint-signing.key``).
Files are written once, never replaced (``checkpoint-<seq>-<UTC>.json`` in
``RELUTH_CHECKPOINT_DIR``, default ``<data dir>/checkpoints``); keep that directory on
append-only storage (a WORM share). ``reluth audit verify --checkpoints DIR`` then catches a
truncated tail or a head moved back, and any rewrite of rows a checkpoint covers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, func, select

from reluth.db.audit import AuditHead, Finding, utc_stamp
from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.keyfiles import missing_key

FORMAT = "reluth-audit-checkpoint/1"
PUBLIC_KEY_NAME = "signing-key.pub"


def create_signing_key(path: Path) -> Path:
    """A new Ed25519 private key at ``path`` (PEM, mode 0600; refused if it exists) and its
    public key beside it (``.pub``). Returns the public key's path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = path.with_name(path.name.removesuffix(".key") + ".pub")
    public.write_bytes(public_pem(private.public_key()))
    return public


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise missing_key("RELUTH_CHECKPOINT_KEY_FILE", path, N_("signing key")) from None
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError(
            str(path), N_("not an Ed25519 private key"), N_("a PEM made by db init")
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise ValidationError(
            str(path), N_("public key not found"), N_("a PEM public key")
        ) from None
    except ValueError:
        raise ValidationError(
            str(path), N_("not a PEM public key"), N_("an Ed25519 public key")
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValidationError(
            str(path), N_("not an Ed25519 public key"), N_("an Ed25519 public key")
        )
    return key


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def table_counts(conn: Connection) -> dict[str, int]:
    """The number of records of every audited table, as stored now."""
    from reluth.db.replay import audited_tables

    return {
        t.name: int(
            conn.execute(select(func.count()).select_from(t.mapper.local_table)).scalar_one()
        )
        for t in audited_tables()
    }


def write(
    conn: Connection,
    directory: Path,
    signing_key: Ed25519PrivateKey,
    reason: str,
    now: dt.datetime,
    key_id: str | None = None,
) -> Path:
    """Sign and write a checkpoint of the database as ``conn`` sees it (one read transaction:
    head and counts agree). Returns the new file."""
    head = conn.execute(select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.key_id)).one()
    body = {
        "format": FORMAT,
        "head_seq": head.last_seq,
        "head_hash": head.last_hash,
        "at_utc": utc_stamp(now),
        "audit_key_id": key_id or head.key_id,
        "tables": table_counts(conn),
        "reason": reason,
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pem = public_pem(signing_key.public_key())
    trusted = directory / PUBLIC_KEY_NAME
    if not trusted.exists():
        trusted.write_bytes(pem)
    document = {
        "checkpoint": body,
        "signature": base64.b64encode(signing_key.sign(_canonical(body))).decode(),
        "public_key": pem.decode(),
    }
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"checkpoint-{head.last_seq:012d}-{stamp}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(document, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return path


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    head_seq: int
    head_hash: str
    at_utc: str
    audit_key_id: str | None
    tables: dict[str, int]
    reason: str


@dataclass
class Loaded:
    """The checkpoints of a directory whose signature verifies, and findings for the rest."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    trusted_key: str | None = None  # where the trusted public key came from


def load(directory: Path, trusted: Ed25519PublicKey | None, trusted_from: str) -> Loaded:
    """Every ``checkpoint-*.json`` of ``directory``, its signature checked against the trusted
    public key (a file signed by any other key is a finding, not a checkpoint)."""
    out = Loaded(trusted_key=trusted_from)
    directory = Path(directory)
    if trusted is None and (directory / PUBLIC_KEY_NAME).exists():
        trusted = load_public_key(directory / PUBLIC_KEY_NAME)
        out.trusted_key = str(directory / PUBLIC_KEY_NAME)
    for path in sorted(directory.glob("checkpoint-*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            body = doc["checkpoint"]
            signature = base64.b64decode(doc["signature"], validate=True)
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}")
            cp = Checkpoint(
                path,
                int(body["head_seq"]),
                str(body["head_hash"]),
                str(body["at_utc"]),
                body.get("audit_key_id"),
                {str(k): int(v) for k, v in body["tables"].items()},
                str(body.get("reason", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out.findings.append(
                Finding("checkpoint", f"checkpoint {path.name} cannot be read: {exc}")
            )
            continue
        if trusted is None:
            out.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {path.name}: no trusted public key to check its signature "
                    f"(give --public-key or keep {PUBLIC_KEY_NAME} in the directory)",
                )
            )
            continue
        try:
            trusted.verify(signature, _canonical(body))
        except InvalidSignature:
            out.findings.append(
                Finding(
                    "checkpoint",
                    f"checkpoint {path.name}: the signature does not verify with the trusted "
                    "public key (forged or altered)",
                )
            )
            continue
        out.checkpoints.append(cp)
    out.checkpoints.sort(key=lambda c: (c.head_seq, c.at_utc))
    return out


class Marks:
    """Watches the chain walk (:func:`reluth.db.audit.check_chain` ``observe``): at each
    checkpoint's seq, the row's hash and the trail's record count of every table."""

    def __init__(self, checkpoints: list[Checkpoint]) -> None:
        self.wanted = {c.head_seq for c in checkpoints}
        self.counts: dict[str, int] = {}
        self.seen: dict[int, tuple[str, dict[str, int]]] = {}
        if 0 in self.wanted:
            from reluth.db.audit import GENESIS_HASH

            self.seen[0] = (GENESIS_HASH, {})

    def __call__(self, row: Any) -> None:
        """``row``: a tuple in the order of :class:`reluth.db.audit.ChainRow`."""
        action, table = row[5], row[6]
        if action == "insert":
            self.counts[table] = self.counts.get(table, 0) + 1
        elif action == "delete":
            self.counts[table] = self.counts.get(table, 0) - 1
        if row[0] in self.wanted:
            self.seen[row[0]] = (row[13], dict(self.counts))


def check(checkpoints: list[Checkpoint], marks: Marks, last_seq: int, key_id: str) -> list[Finding]:
    """The chain against every checkpoint: it reaches the checkpoint's head, has its hash
    there, and replays the numbers of records the checkpoint saw."""
    findings = []
    for cp in checkpoints:
        name = f"checkpoint {cp.path.name} ({cp.at_utc})"
        if cp.audit_key_id not in (None, key_id):
            findings.append(
                Finding(
                    "checkpoint", f"{name} was made under another audit key ({cp.audit_key_id})"
                )
            )
        if cp.head_seq > last_seq:
            findings.append(
                Finding(
                    "checkpoint",
                    f"the audit trail ends at row {last_seq} but {name} records row "
                    f"{cp.head_seq}: rows were removed from the end or the head was moved back",
                    "audit_log",
                    str(last_seq + 1),
                    last_seq + 1,
                    "head_seq",
                    str(cp.head_seq),
                    str(last_seq),
                )
            )
            continue
        seen = marks.seen.get(cp.head_seq)
        if seen is None or seen[0] != cp.head_hash:
            findings.append(
                Finding(
                    "checkpoint",
                    f"row {cp.head_seq} is not the row {name} signed: the chain up to it was "
                    "rewritten",
                    "audit_log",
                    str(cp.head_seq),
                    cp.head_seq,
                    "row_hash",
                    cp.head_hash,
                    None if seen is None else seen[0],
                )
            )
            continue
        counts = seen[1]
        for table, n in sorted(cp.tables.items()):
            if counts.get(table, 0) != n:
                findings.append(
                    Finding(
                        "checkpoint",
                        f"{table}: {name} saw {n} records, the audit trail up to row "
                        f"{cp.head_seq} creates {counts.get(table, 0)} (the table was changed "
                        "outside the application before the checkpoint)",
                        table,
                        None,
                        cp.head_seq,
                        None,
                        str(counts.get(table, 0)),
                        str(n),
                    )
                )
    return findings
