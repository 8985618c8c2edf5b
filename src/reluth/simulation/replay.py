"""Replay a synthetic cohort through the real services: the path real data takes.

Every write goes through a domain service inside an audited ``unit_of_work`` (eligibility
checks, inclusion, the randomization service that decides the arm, treatment, visits, central
RECIST reads, laboratory results graded by CTCAE, adverse events, questionnaires scored by the
QoL engine, concomitant medications, medical history, childbearing potential and a negative
pregnancy test before each cycle of a woman who needs one, protocol deviations, withdrawals,
deaths and ends of study). Nothing here writes a table directly.

The arm is never taken from the cohort: each randomized patient carries potential outcomes for
both arms, and the outcome of the arm the service allocated is the one recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from reluth.auth import service as auth
from reluth.auth.actor import Actor
from reluth.auth.roles import Role
from reluth.clinical import service as clinical
from reluth.core.context import Ctx, writing
from reluth.core.trial import Trial
from reluth.errors import PreconditionFailed, ReluthError
from reluth.patients import service as patients
from reluth.protocol.definition import Protocol
from reluth.protocol.schedule import PlannedVisit, planned_visits
from reluth.qol import service as qol_service
from reluth.randomization import service as randomization
from reluth.response import service as response
from reluth.safety import records
from reluth.simulation.cohort import (
    AdverseEventRecord,
    ArmOutcome,
    ClinicalHistory,
    SyntheticCohort,
    SyntheticPatient,
    clinical_history,
)
from reluth.sites import service as sites
from reluth.treatment import service as treatment

Tick = Callable[[str], None]

#: Demo accounts, one per role (development only; printed by `reluth demo`).
DEMO_PASSWORD_PREFIX = "reluth-demo-"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    centres: tuple[str, ...]

    @property
    def password(self) -> str:
        return f"{DEMO_PASSWORD_PREFIX}{self.username}"


@dataclass
class ReplayStats:
    screened: int = 0
    included: int = 0
    not_included: int = 0
    randomized: int = 0
    gate_failures: Counter[str] = field(default_factory=Counter)
    arms: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    allocated: dict[str, str] = field(default_factory=dict)


def demo_accounts(cohort: SyntheticCohort) -> list[DemoAccount]:
    return [
        DemoAccount("admin", Role.ADMIN, ()),
        *[
            DemoAccount(f"investigator-{c.code.lower()}", Role.INVESTIGATOR, (c.code,))
            for c in cohort.centres
        ],
        *[
            DemoAccount(f"nurse-{c.code.lower()}", Role.RESEARCH_NURSE, (c.code,))
            for c in cohort.centres
        ],
        DemoAccount("monitor", Role.MONITOR, tuple(c.code for c in cohort.centres[:5])),
        DemoAccount("datamanager", Role.DATA_MANAGER, ()),
        DemoAccount("reviewer", Role.CENTRAL_REVIEWER, ()),
        DemoAccount("physicist", Role.MEDICAL_PHYSICIST, ()),
        DemoAccount("pharmacovigilance", Role.PHARMACOVIGILANCE, ()),
        DemoAccount("statistician", Role.STATISTICIAN, ()),
    ]


def _nurse(p: SyntheticPatient) -> str:
    return f"nurse-{p.centre.lower()}"


def _investigator(p: SyntheticPatient) -> str:
    return f"investigator-{p.centre.lower()}"


REVIEWER = "reviewer"
STATISTICIAN = "statistician"
PHARMACOVIGILANCE = "pharmacovigilance"
ADMIN = "admin"
PHYSICIST = "physicist"


def _timepoint(day: int, visits: list[PlannedVisit]) -> str:
    """The planned tumour-assessment visit nearest to ``day`` (its code names the read)."""
    candidates = [v for v in visits if v.kind in ("tumour_assessment", "follow_up", "end_of_study")]
    best = min(candidates, key=lambda v: abs(v.day - day))
    return best.code


class Replayer:
    """Runs the trial's events in calendar order through the services, each as the demo
    account whose job it is, authenticated by its password like anyone else."""

    def __init__(
        self,
        engine: Engine,
        cohort: SyntheticCohort,
        seed: int,
        trial: Trial | None = None,
        protocol: Protocol | None = None,
    ) -> None:
        self.engine = engine
        self.cohort = cohort
        self.seed = seed
        # The cohort's protocol unless told otherwise: the trial the cohort was drawn for.
        self.trial = trial or Trial(protocol or cohort.config.protocol)
        self.protocol = self.trial.protocol
        self.stats = ReplayStats()
        self.actors: dict[str, Actor] = {}

    def actor(self, username: str) -> Actor:
        """The demo account ``username``, logged in once with its published password."""
        if username not in self.actors:
            password = f"{DEMO_PASSWORD_PREFIX}{username}"
            actor, _user = auth.password_login(self.engine, self.trial.now(), username, password)
            self.actors[username] = actor
        return self.actors[username]

    @contextmanager
    def _uow(self, username: str, what: str, trial: Trial | None = None) -> Iterator[Ctx]:
        with writing(self.engine, self.actor(username), trial or self.trial) as ctx:
            yield ctx
        self.stats.records[what] += 1

    # -- set-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        """The first administrator on the empty database (the bootstrap), then centres,
        accounts and the allocation list, each by the account whose job it is."""
        with writing(self.engine, self._bootstrap(), self.trial) as ctx:
            auth.create_user(ctx, ADMIN, Role.ADMIN.value, f"{DEMO_PASSWORD_PREFIX}{ADMIN}")
        with self._uow(ADMIN, "centre") as s:
            for c in self.cohort.centres:
                sites.add_centre(s, c.code, c.name, c.opening_date)
        with self._uow(ADMIN, "user") as s:
            for a in demo_accounts(self.cohort):
                if a.username != ADMIN:
                    auth.create_user(s, a.username, a.role.value, a.password, a.centres)
        with self._uow(STATISTICIAN, "randomization set-up") as s:
            randomization.configure(s, "blocks", block_sizes=(2, 4))
            secret = hashlib.sha256(f"reluth-demo-list-{self.seed}".encode()).hexdigest()
            randomization.generate_list(s, seed=secret, per_stratum=64)

    def _bootstrap(self) -> Actor:
        from reluth.db.session import read_session

        with read_session(self.engine) as session:
            return auth.bootstrap_actor(session, "reluth-demo")

    # -- screening and inclusion ----------------------------------------------------------
    def screen_and_include(self, p: SyntheticPatient) -> None:
        self.stats.screened += 1
        cov = p.covariates
        # registered on the day of screening (not on the replay's day), so that the patient's
        # registration date comes before the inclusion it led to
        with self._uow(_nurse(p), "registration", trial=self.trial.on(p.screening_date)) as s:
            patients.register_patient(
                s,
                p.centre,
                patient_code=p.patient_id,
                sex=cov.sex,
                birth_year=_birth_year(p, cov.age),
            )
        with self._uow(_nurse(p), "screening") as s:
            outcome = patients.screen_patient(s, p.inclusion_file)
        if outcome.status != "eligible":
            self.stats.not_included += 1
            return
        consent = p.inclusion_file.get("consent") or {}
        consent_date = (
            dt.date.fromisoformat(consent["date"]) if consent.get("date") else p.screening_date
        )
        with self._uow(_nurse(p), "inclusion") as s:
            patients.include_patient(s, p.patient_id, consent_date, inclusion_date=p.screening_date)
        self.stats.included += 1
        history = clinical_history(p, self.seed)
        self._clinical_forms(p, history)
        gate = p.randomization_file or {}
        for number, day in enumerate(
            (gate.get("second_prrt") or {}).get("cycle_dates", ()), start=1
        ):
            with self._uow(_nurse(p), "administration") as s:
                self._pregnancy_test(s, p, history, dt.date.fromisoformat(day), consent_date)
                treatment.record_cycle(
                    s,
                    p.patient_id,
                    number,
                    dt.date.fromisoformat(day),
                    self.protocol.second_prrt.activity_gbq,
                    f"LOT-{p.patient_id}-{number}",
                )

    def _clinical_forms(self, p: SyntheticPatient, history: ClinicalHistory) -> None:
        """The forms filled at inclusion: medications, history, childbearing potential and
        the deviations found at monitoring."""
        with self._uow(_nurse(p), "clinical forms") as s:
            for med in history.conmeds:
                clinical.record_conmed(s, p.patient_id, med)
                self.stats.records["conmed"] += 1
            for item in history.medical_history:
                clinical.record_medical_history(s, p.patient_id, item)
                self.stats.records["medical history"] += 1
            if history.childbearing is not None:
                clinical.record_childbearing(s, p.patient_id, history.childbearing)
            for deviation in history.deviations:
                clinical.record_deviation(s, p.patient_id, deviation)
                self.stats.records["deviation"] += 1

    def _pregnancy_test(
        self,
        s: Ctx,
        p: SyntheticPatient,
        history: ClinicalHistory,
        cycle_day: dt.date,
        consent: dt.date,
    ) -> None:
        """A negative serum test two days before a cycle (never before the consent) for a
        woman of childbearing potential, as the protocol's pregnancy testing requires."""
        if not (history.childbearing or {}).get("childbearing_potential"):
            return
        day = max(consent, cycle_day - dt.timedelta(days=2))
        test = {"test_date": day.isoformat(), "method": "serum", "result": "negative"}
        clinical.record_pregnancy_test(s, p.patient_id, test)
        self.stats.records["pregnancy test"] += 1

    # -- the pre-randomization gate and the randomization service ------------------------
    def randomize(self, p: SyntheticPatient) -> str | None:
        gate = p.randomization_file
        if gate is None:
            return None
        second = gate.get("second_prrt") or {}
        with self._uow(_nurse(p), "screening") as s:
            # eligibility confirmed again at the gate (labs, ECOG, SSTR imaging after the cycles)
            patients.screen_patient(s, gate)
        if second.get("assessment_date") is not None:
            with self._uow(_nurse(p), "pre-randomization assessment") as s:
                progression = bool(second.get("radiological_progression"))
                patients.record_pre_randomization(
                    s,
                    p.patient_id,
                    dt.date.fromisoformat(second["assessment_date"]),
                    progression,
                    overall_response="PD" if progression else "SD",
                )
        asked = _gate_date(p)
        at = self.trial.at(dt.datetime.combine(asked, dt.time(10, 0), tzinfo=dt.UTC))
        try:
            with self._uow(_investigator(p), "randomization", trial=at) as s:
                result = randomization.randomize(s, p.patient_id, f"demo-{p.patient_id}")
        except PreconditionFailed as exc:
            self.stats.gate_failures[p.screen_failure_reason or exc.message.split(":")[0]] += 1
            with self._uow(_nurse(p), "end of study") as s:
                patients.record_end_of_study(
                    s, p.patient_id, asked, "screen_failure", details=exc.message[:200]
                )
            return None
        self.stats.randomized += 1
        self.stats.arms[result.arm] += 1
        self.stats.allocated[p.patient_id] = result.arm
        return str(result.arm)

    # -- follow-up after randomization ---------------------------------------------------
    def follow(self, p: SyntheticPatient, arm: str) -> None:
        outcome: ArmOutcome = p.outcomes[arm]
        assert p.randomization_request_date is not None
        rand = p.randomization_request_date
        visits = planned_visits(rand, arm, self.protocol)
        nurse = _nurse(p)
        history = clinical_history(p, self.seed)
        with self._uow(nurse, "treatment and visits") as s:
            first = self.protocol.arm(arm).first_cycle_number or 0
            for number, day in enumerate(outcome.treatment_dates, start=first):
                self._pregnancy_test(s, p, history, day, rand)
                treatment.record_cycle(
                    s,
                    p.patient_id,
                    number,
                    day,
                    self._cycle_activity_gbq(arm),
                    f"LOT-{p.patient_id}-{number}",
                )
                self._visit(s, p, f"C{number}", day)
        self._central_reads(p, outcome, rand, visits)
        self._labs(p, outcome)
        self._adverse_events(p, outcome)
        self._questionnaires(p, outcome, visits)
        self._end(p, outcome)

    def _cycle_activity_gbq(self, arm: str) -> Decimal:
        activity = self.protocol.arm(arm).activity_gbq
        assert activity is not None, f"arm {arm} has no treatment cycles"
        return activity

    def _visit(self, s: Any, p: SyntheticPatient, code: str, day: dt.date) -> None:
        try:
            treatment.record_visit(s, p.patient_id, code, day)
        except ReluthError as exc:
            self.stats.refused[f"visit: {type(exc).__name__}"] += 1

    def _central_reads(
        self, p: SyntheticPatient, outcome: ArmOutcome, rand: dt.date, visits: list[PlannedVisit]
    ) -> None:
        recist = outcome.recist
        baseline = recist["baseline"]
        with self._uow(REVIEWER, "central read") as s:
            response.record_central_read(
                s,
                p.patient_id,
                "baseline",
                dt.date.fromisoformat(baseline["date"]),
                "CT",
                list(baseline["lesions"]),
                "no",
            )
        used: set[str] = set()
        visit_days: list[tuple[str, dt.date]] = []
        with self._uow(REVIEWER, "central review session") as s:
            for fu in recist["followups"]:
                day = dt.date.fromisoformat(fu["date"])
                code = _timepoint((day - rand).days, visits)
                if code in used:  # a second read near the same planned visit
                    code = f"{code}-d{(day - rand).days}"
                else:
                    visit_days.append((code, day))
                used.add(code)
                response.record_central_read(
                    s,
                    p.patient_id,
                    code,
                    day,
                    "CT",
                    list(fu["lesions"]),
                    str(fu.get("new_lesions", "no")),
                )
        with self._uow(_nurse(p), "visits") as s:
            for code, day in visit_days:
                self._visit(s, p, code, day)

    def _labs(self, p: SyntheticPatient, outcome: ArmOutcome) -> None:
        by_date: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for result in outcome.labs:
            entry = {
                k: v
                for k, v in result.items()
                if k in ("test", "value", "unit", "uln", "lln", "baseline")
            }
            by_date[str(result["date"])].append(entry)
        with self._uow(_nurse(p), "laboratory") as s:
            for day, results in sorted(by_date.items()):
                records.record_labs(
                    s, {"patient_id": p.patient_id, "date": day, "results": results}
                )

    def _adverse_events(self, p: SyntheticPatient, outcome: ArmOutcome) -> None:
        if not outcome.adverse_events:
            return
        serious: list[tuple[int, AdverseEventRecord]] = []
        with self._uow(_nurse(p), "adverse events") as s:
            for ae in outcome.adverse_events:
                row = self._adverse_event(s, p, ae)
                if ae.serious:
                    serious.append((row.id, ae))
        if serious:
            self._sae_reports(p, serious)

    def _sae_reports(
        self, p: SyntheticPatient, serious: list[tuple[int, AdverseEventRecord]]
    ) -> None:
        """Each serious event's initial report and one follow-up by the site (ICH E2A: the
        follow-up gives the outcome), then the sponsor's assessment of each by
        pharmacovigilance, through the SAE services as a site and the sponsor would."""
        from reluth.safety import sae

        with self._uow(_nurse(p), "SAE reporting") as s:
            for ae_id, ae in serious:
                fatal = ae.grade == 5
                first = "fatal" if fatal else "not_recovered"
                later = "fatal" if fatal else ("recovered" if ae.end_date else "not_recovered")
                action = "drug_interrupted" if ae.related_to_treatment else "dose_not_changed"
                sae.report_sae(s, ae_id, {
                    "narrative": f"{ae.term} (CTCAE grade {ae.grade}) from {ae.onset_date}; "
                    "the patient was admitted for care.",
                    "action_taken": action,
                    "treatment": "supportive care",
                    "outcome": first,
                })  # fmt: skip
                sae.report_sae(s, ae_id, {
                    "narrative": f"Follow-up: {ae.term} "
                    + (f"resolved on {ae.end_date}." if ae.end_date else "ongoing."),
                    "action_taken": action,
                    "outcome": later,
                })  # fmt: skip
                self.stats.records["SAE report"] += 2
        with self._uow(PHARMACOVIGILANCE, "SAE assessing") as s:
            for ae_id, ae in serious:
                for sequence in (0, 1):
                    sae.assess_report(
                        s,
                        ae_id,
                        sequence,
                        "related" if ae.related_to_treatment else "not_related",
                        "expected",
                    )
                    self.stats.records["SAE assessment"] += 1

    def _adverse_event(self, s: Any, p: SyntheticPatient, ae: AdverseEventRecord) -> Any:
        if ae.grade == 5:
            out = "fatal"
        elif ae.end_date is not None:
            out = "recovered"
        else:
            out = "not_recovered"
        data = {
            "patient_id": p.patient_id,
            "term": ae.term,
            "grade": ae.grade,
            "serious": ae.serious,
            "relatedness": "possible" if ae.related_to_treatment else "not_related",
            "outcome": out,
            "onset_date": ae.onset_date.isoformat(),
            "resolution_date": ae.end_date.isoformat() if ae.end_date else None,
            "awareness_date": ae.onset_date.isoformat() if ae.serious else None,
            "seriousness": (["death"] if ae.grade == 5 else ["hospitalisation"])
            if ae.serious
            else [],
        }
        return records.record_adverse_event(s, data)

    def _questionnaires(
        self, p: SyntheticPatient, outcome: ArmOutcome, visits: list[PlannedVisit]
    ) -> None:
        qol_visits = [v for v in visits if v.kind == "qol"]
        used: set[str] = set()
        with self._uow(_nurse(p), "questionnaires") as s:
            for q in outcome.qol:
                # the scheduled time point nearest the completion day, once each (the service
                # takes only the schedule's time points)
                free = [v for v in qol_visits if v.code not in used]
                if not free:
                    continue
                tp = min(free, key=lambda v: abs(v.day - q.day)).code
                used.add(tp)
                for instrument, items in (("QLQ-C30", q.c30), ("QLQ-GINET21", q.ginet21)):
                    qol_service.record_questionnaire(
                        s,
                        {
                            "patient_id": p.patient_id,
                            "instrument": instrument,
                            "timepoint": tp,
                            "completed_on": q.date.isoformat(),
                            "items": items,
                        },
                    )

    def _end(self, p: SyntheticPatient, outcome: ArmOutcome) -> None:
        with self._uow(_nurse(p), "end of study") as s:
            if outcome.death_date is not None:
                if outcome.progression_date:
                    cause, details = "disease", None
                else:
                    cause, details = "other", "synthetic death not due to progression"
                patients.record_death(s, p.patient_id, outcome.death_date, cause, details)
                patients.record_end_of_study(s, p.patient_id, outcome.death_date, "death")
            elif outcome.dropout_date is not None:
                withdrawal = {
                    "kind": "follow_up",
                    "withdrawal_date": outcome.dropout_date.isoformat(),
                    "decided_by": "patient",
                }
                patients.record_withdrawal(s, p.patient_id, withdrawal)
                self.stats.records["withdrawal"] += 1
                patients.record_end_of_study(s, p.patient_id, outcome.dropout_date, "withdrawal")


def _birth_year(p: SyntheticPatient, age: int) -> int:
    """A birth year consistent with the age on the screening file's assessment date."""
    assessed = p.inclusion_file.get("assessment_date")
    year = dt.date.fromisoformat(assessed).year if assessed else p.screening_date.year
    return year - age


def _gate_date(p: SyntheticPatient) -> dt.date:
    """When the randomization is asked for: the cohort's request date, or for a patient who
    fails at the gate, the day of the pre-randomization assessment."""
    if p.randomization_request_date is not None:
        return p.randomization_request_date
    gate = p.randomization_file or {}
    assessed = (gate.get("second_prrt") or {}).get("assessment_date")
    return dt.date.fromisoformat(assessed) if assessed else p.screening_date


def events(cohort: SyntheticCohort) -> list[tuple[dt.date, int, str, SyntheticPatient]]:
    """The trial's events in calendar order: screening, then randomization requests."""
    out: list[tuple[dt.date, int, str, SyntheticPatient]] = []
    for p in cohort.patients:
        out.append((p.screening_date, 0, "screen", p))
        if p.randomization_file is not None:
            out.append((_gate_date(p), 1, "randomize", p))
    out.sort(key=lambda e: (e[0], e[1], e[3].index))
    return out


def play(replayer: Replayer, kind: str, patient: SyntheticPatient) -> None:
    """One event of :func:`events` through the services: a screening (with the inclusion), or a
    randomization request followed, when an arm is allocated, by the patient's follow-up."""
    if kind == "screen":
        replayer.screen_and_include(patient)
        return
    arm = replayer.randomize(patient)
    if arm is not None:
        replayer.follow(patient, arm)
