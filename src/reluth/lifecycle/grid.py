"""The lifecycle's layer of the status grid: a complete form whose records are all verified
against the source is *SDV done*, all under a valid investigator signature *signed*, and any
form under a lock or freeze of its records, its patient, its centre or the study *locked*
(ICH E6(R3) 3.11.4 monitoring, 4.2 data lock; 21 CFR 11.50 signatures).

Read once per grid, one query per table (SDV marks with their clearances, signatures with
their invalidations, active locks), whatever the number of patients. A signature counts while
no later change invalidated it (the write door records that, :mod:`reluth.lifecycle.guard`);
the grid does not re-hash the values (the patient's lifecycle page does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from reluth.forms.status import FormFacts, FormStatus, Layer, register_layer_source
from reluth.lifecycle.models import (
    RecordLock,
    SdvClearance,
    SdvMark,
    Signature,
    SignatureInvalidation,
)

Key = tuple[str, int | str]


def _key(table: str, rid: str) -> Key:
    """A record's key as the grid's record ids are: an int where the stored text is one as the
    write path prints it (no leading zero), else the text."""
    return (table, int(rid)) if rid.isdigit() and rid[0] != "0" else (table, rid)


#: Statuses a lifecycle state may follow: SDV and signatures only of a complete form.
_ENTERED = frozenset({FormStatus.COMPLETE})


class _State:
    """What the lifecycle says of the grid's patients, read once."""

    def __init__(self, session: Session, patients: Mapping[int, int]) -> None:
        ids = list(patients) or [-1]
        self.centres = patients
        # Core columns (plain tuples): a monitored trial has a mark per record
        mark, clear = SdvMark.__table__.c, SdvClearance.__table__.c
        self.verified: set[Key] = {
            (t, int(r)) if r.isdigit() and r[0] != "0" else (t, r)  # _key, inlined: 1 per record
            for t, r in session.execute(
                select(mark.table_name, mark.record_id)
                .outerjoin(SdvClearance.__table__, clear.sdv_id == mark.id)
                .where(clear.id.is_(None), mark.field.is_(None), mark.patient_id.in_(ids))
            ).all()
        }
        self.signed: set[Key] = set()
        sig, inval = Signature.__table__.c, SignatureInvalidation.__table__.c
        for (covered,) in session.execute(
            select(sig.covered)
            .outerjoin(SignatureInvalidation.__table__, inval.signature_id == sig.id)
            .where(inval.id.is_(None), sig.patient_id.in_(ids))
        ).all():
            self.signed.update(
                (t, int(r)) if r.isdigit() and r[0] != "0" else (t, r)  # _key, inlined
                for t, _, r in (key.partition("/") for key in json.loads(covered))
            )
        self.study: dict[str, bool] = {}
        self.centre: dict[int, str] = {}
        self.patient: dict[int, str] = {}
        self.form: dict[Key, str] = {}
        for lock in session.scalars(select(RecordLock).where(RecordLock.unlocked_at.is_(None))):
            kind = lock.kind
            if lock.scope == "study":
                self.study[kind] = True
            elif lock.scope == "centre" and lock.centre_id is not None:
                self.centre[lock.centre_id] = _stronger(self.centre.get(lock.centre_id), kind)
            elif lock.scope == "patient" and lock.patient_id is not None:
                self.patient[lock.patient_id] = _stronger(self.patient.get(lock.patient_id), kind)
            elif lock.table_name is not None and lock.record_id is not None:
                key = _key(lock.table_name, lock.record_id)
                self.form[key] = _stronger(self.form.get(key), kind)
        #: any active lock or freeze at all (else no form's lock is looked up)
        self.locked_anywhere = bool(self.study or self.centre or self.patient or self.form)

    @property
    def empty(self) -> bool:
        """Nothing verified, signed or locked among these patients: no layer needed."""
        return not (self.verified or self.signed or self.locked_anywhere)

    def lock_kind(self, facts: FormFacts, keys: list[Key]) -> str | None:
        """The strongest lock over the form at this visit: "lock", "freeze" or None."""
        if not self.locked_anywhere:
            return None
        kinds = [
            "lock" if self.study.get("lock") else ("freeze" if self.study else None),
            self.centre.get(self.centres.get(facts.patient_id, -1)),
            self.patient.get(facts.patient_id),
        ]
        if keys and all(k in self.form for k in keys):
            kinds += [self.form[k] for k in keys]
        found = [k for k in kinds if k is not None]
        if not found:
            return None
        return "lock" if "lock" in found else "freeze"

    def layer(self, facts: FormFacts, status: FormStatus) -> FormStatus | None:
        if status is FormStatus.NOT_EXPECTED:
            return None
        locked = self.locked_anywhere
        if not locked and status not in _ENTERED:
            return None
        keys: list[Key] = [(facts.table, i) for i in facts.record_ids if i]
        kind = self.lock_kind(facts, keys) if locked else None
        # a freeze stops data entry but not queries: an open query stays visible
        if kind == "lock" or (kind == "freeze" and status is not FormStatus.QUERIED):
            return FormStatus.LOCKED
        if status not in _ENTERED or not keys:
            return None
        if all(k in self.signed for k in keys):
            return FormStatus.SIGNED
        if all(k in self.verified for k in keys):
            return FormStatus.SDV_DONE
        return None


def _stronger(old: str | None, new: str) -> str:
    return "lock" if "lock" in (old, new) else "freeze"


def lifecycle_layer(session: Session, patients: Mapping[int, int]) -> Layer | None:
    """The grid's lifecycle layer for these patients ({patient id: centre id}); None when
    nothing of theirs is verified, signed or locked (a trial before monitoring starts)."""
    state = _State(session, patients)
    return None if state.empty else state.layer


register_layer_source(lifecycle_layer)
