"""Allocation integrity, checked at every ``reluth audit verify`` and by the randomization
report: the list's content hash against its slots, every randomization's arm against its slot's,
slots consumed in order without gaps per stratum, and each used slot belonging to exactly one
randomization of that patient and stratum.

The checks that read arms need the allocation key (:mod:`reluth.sealing`); without it they are
reported as not done, never as passed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, select

from reluth import sealing
from reluth.db.audit import Finding
from reluth.randomization import methods
from reluth.randomization.models import (
    AllocationList,
    AllocationSlot,
    AllocationStratum,
    Randomization,
)


@dataclass
class AllocationCheck:
    findings: list[Finding] = field(default_factory=list)
    #: what was checked, and what could not be (no allocation key)
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)


def _finding(message: str, table: str, record: object, **kw: str | None) -> Finding:
    return Finding("allocation", message, table, str(record), **kw)  # type: ignore[arg-type]


def _slots(conn: Connection, list_id: int) -> Iterator[AllocationSlot]:
    yield from conn.execution_options(stream_results=True, yield_per=5000).execute(
        select(
            AllocationSlot.id,
            AllocationSlot.list_id,
            AllocationSlot.stratum_key,
            AllocationSlot.position,
            AllocationSlot.sealed,
            AllocationSlot.patient_id,
        )
        .where(AllocationSlot.list_id == list_id)
        .order_by(AllocationSlot.id)
    )  # type: ignore[misc]


class _Stratum:
    """One stratum's slots walked in order: positions 1..n, used slots first, each used slot
    with one randomization of its patient and stratum and (with the key) of its arm."""

    def __init__(
        self,
        key: str,
        sealer: sealing.Sealer | None,
        rands: dict[int, Any],
        by_slot: dict[int, list[int]],
        seen: set[int],
        findings: list[Finding],
    ) -> None:
        self.key, self.sealer, self.rands, self.by_slot = key, sealer, rands, by_slot
        self.seen, self.findings = seen, findings
        self.plain: list[methods.Slot] = []
        self.readable = sealer is not None
        self.expected, self.used, self.unused_seen = 1, 0, False

    def _open(self, s: Any) -> dict[str, Any] | None:
        if self.sealer is None:
            return None
        try:
            if s.sealed is None:
                raise sealing.SealBroken("empty")
            content = self.sealer.open(
                s.sealed, sealing.slot_place(s.list_id, s.stratum_key, s.position)
            )
        except sealing.SealBroken:
            self.readable = False
            self.findings.append(
                _finding(
                    f"slot {s.id} ({s.stratum_key}#{s.position}) does not open with the "
                    "allocation key: it was altered or moved",
                    "allocation_slots",
                    s.id,
                    field="sealed",
                )
            )
            return None
        self.plain.append(
            methods.Slot(s.position, content["block"], content["block_size"], content["arm"])
        )
        return content

    def check(self, s: Any) -> None:
        if s.position != self.expected:
            self.findings.append(
                _finding(
                    f"slot {s.id}: position {s.position} in stratum {s.stratum_key} where "
                    f"{self.expected} was expected (slots removed, added or moved)",
                    "allocation_slots",
                    s.id,
                    field="position",
                    expected=str(self.expected),
                    found=str(s.position),
                )
            )
        self.expected = s.position + 1
        content = self._open(s)
        if s.patient_id is None:
            self.unused_seen = True
        else:
            self.used += 1
            if self.unused_seen:
                self.findings.append(
                    _finding(
                        f"slot {s.id} ({s.stratum_key}#{s.position}) is used after an unused "
                        "one: slots are consumed in order without gaps",
                        "allocation_slots",
                        s.id,
                        field="patient_id",
                    )
                )
        users = self.by_slot.get(s.id, [])
        self.seen.add(s.id)
        if s.patient_id is not None and len(users) != 1:
            self.findings.append(
                _finding(
                    f"slot {s.id} ({s.stratum_key}#{s.position}) is used by patient "
                    f"{s.patient_id} but belongs to {len(users)} randomizations",
                    "allocation_slots",
                    s.id,
                    field="patient_id",
                )
            )
        for rid in users:
            r = self.rands[rid]
            if s.patient_id != r.patient_id or s.stratum_key != r.stratum_key:
                held = (
                    "free"
                    if s.patient_id is None
                    else f"of patient {s.patient_id} in stratum {s.stratum_key}"
                )
                self.findings.append(
                    _finding(
                        f"randomization {rid} names slot {s.id}, which is {held}",
                        "randomizations",
                        rid,
                        field="slot_id",
                    )
                )
            if content is not None and content["arm"] != r.arm:
                self.findings.append(
                    _finding(
                        f"randomization {rid}: arm {r.arm} but its slot {s.id} holds "
                        f"{content['arm']}",
                        "randomizations",
                        rid,
                        field="arm",
                        expected=content["arm"],
                        found=r.arm,
                    )
                )

    def check_cursor(self, cursor: Any) -> None:
        n = self.expected - 1
        if cursor is None:
            self.findings.append(
                _finding(
                    f"stratum {self.key} has slots but no cursor", "allocation_strata", self.key
                )
            )
        elif cursor.size != n or cursor.next_position != self.used + 1:
            self.findings.append(
                _finding(
                    f"stratum {self.key}: its cursor (size {cursor.size}, next "
                    f"{cursor.next_position}) disagrees with its slots ({n} slots, "
                    f"{self.used} used)",
                    "allocation_strata",
                    cursor.id,
                    field="next_position",
                    expected=str(self.used + 1),
                    found=str(cursor.next_position),
                )
            )


def check_allocations(conn: Connection, key: sealing.AllocationKey | None) -> AllocationCheck:
    """Every allocation check; findings name the list, slot or randomization."""
    out = AllocationCheck()
    sealer = key.sealer() if key is not None else None
    rands = {
        r.id: r
        for r in conn.execute(
            select(
                Randomization.id,
                Randomization.patient_id,
                Randomization.arm,
                Randomization.method,
                Randomization.stratum_key,
                Randomization.slot_id,
            )
        )
    }
    by_slot: dict[int, list[int]] = {}
    for r in rands.values():
        if r.slot_id is not None:
            by_slot.setdefault(r.slot_id, []).append(r.id)
        elif r.method == "blocks":
            out.findings.append(
                _finding(
                    f"randomization {r.id} (permuted blocks) names no allocation slot",
                    "randomizations",
                    r.id,
                    field="slot_id",
                )
            )
    seen_slots: set[int] = set()
    lists = conn.execute(select(AllocationList.id, AllocationList.content_sha256)).all()
    for alloc in lists:
        cursors = {
            c.stratum_key: c
            for c in conn.execute(
                select(
                    AllocationStratum.id,
                    AllocationStratum.stratum_key,
                    AllocationStratum.size,
                    AllocationStratum.next_position,
                ).where(AllocationStratum.list_id == alloc.id)
            )
        }
        digest = hashlib.sha256()
        readable = sealer is not None
        for stratum, slots in groupby(_slots(conn, alloc.id), key=lambda s: s.stratum_key):
            walk = _Stratum(stratum, sealer, rands, by_slot, seen_slots, out.findings)
            for slot in slots:
                walk.check(slot)
            readable = readable and walk.readable
            if readable:
                digest.update(methods.list_digest(stratum, walk.plain).encode())
            walk.check_cursor(cursors.pop(stratum, None))
        for stratum_left, cursor in cursors.items():
            out.findings.append(
                _finding(
                    f"stratum {stratum_left} has a cursor but no slots",
                    "allocation_strata",
                    cursor.id,
                )
            )
        if readable and digest.hexdigest() != alloc.content_sha256:
            out.findings.append(
                _finding(
                    "the allocation list's content does not match the SHA-256 recorded when it "
                    "was generated",
                    "allocation_lists",
                    alloc.id,
                    field="content_sha256",
                    expected=alloc.content_sha256,
                    found=digest.hexdigest(),
                )
            )
    for slot_id, users in by_slot.items():
        if slot_id not in seen_slots:
            for rid in users:
                out.findings.append(
                    _finding(
                        f"randomization {rid} names slot {slot_id}, which does not exist",
                        "randomizations",
                        rid,
                        field="slot_id",
                    )
                )
    out.done.append("slots consumed in order, each used slot with one randomization")
    if sealer is not None:
        out.done.append("list content hash; each randomization's arm equal to its slot's")
    elif lists:
        out.not_done.append(
            "list content hash and arms against slots: no allocation key (RELUTH_ALLOCATION_KEY_FILE)"
        )
    return out
