"""One table of patient histories and the endpoints RECIST 1.1 and the SAP give them.

Each history is entered twice: as central reads (lesion measurements) through the central
review service, and as the ``assessments.csv`` rows of ``reluth analyze --data`` (the
time-point response as the reader scored it, and the new-lesion call). Both doors must give
the BOR, DCR6, PFS date and censoring written here. Days count from randomization; the
baseline read is a week before it.

Sources: Eisenhauer 2009 (RECIST 1.1) §4.3-4.4 — BOR up to the first PD, SD only after the
protocol's minimum duration, an equivocal new lesion later confirmed dates PD to the scan where
it first appeared; the ReLUTH protocol (Deshayes 2022) — disease control at 6 months, non-
evaluable patients are failures, PFS is progression by central review, rPFS progression or
death.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Baseline of the histories with target disease: sum 80 mm.
TARGETS = (
    {"id": "T1", "organ": "liver", "kind": "target", "diameter_mm": "50"},
    {"id": "T2", "organ": "lung", "kind": "target", "diameter_mm": "30"},
    {"id": "NT1", "organ": "peritoneum", "kind": "non_target", "status": "present"},
)
#: Baseline of non-target disease only.
NON_TARGETS = (
    {"id": "NT1", "organ": "peritoneum", "kind": "non_target", "status": "present"},
    {"id": "NT2", "organ": "bone", "kind": "non_target", "status": "present"},
)

# Follow-up measurements against TARGETS (sum, response vs baseline 80 / nadir).
SD = {"T1": "48", "T2": "28", "NT1": "present"}  # 76: SD
PR = {"T1": "30", "T2": "20", "NT1": "present"}  # 50 <= 56: PR
PR_52 = {"T1": "32", "T2": "20", "NT1": "present"}  # 52: PR
PR_HELD = {"T1": "36", "T2": "22", "NT1": "present"}  # 58: not -30 %, below nadir 50 +20 %
CR = {"T1": "absent", "T2": "absent", "NT1": "absent"}
PD = {"T1": "60", "T2": "40", "NT1": "present"}  # 100 >= 1.2 x nadir and + 5 mm: PD
NE = {"T1": "not_evaluated", "T2": "28", "NT1": "present"}
NT_PD = {"T1": "48", "T2": "28", "NT1": "unequivocal_progression"}
NN = {"NT1": "present", "NT2": "present"}  # non-target disease only: NON-CR/NON-PD


@dataclass(frozen=True)
class Visit:
    day: int
    response: str  # overall response as the reader scores it (the CSV's overall_response)
    lesions: dict[str, str]
    new_lesions: str = "no"
    engine: str | None = None  # the engine's time-point response, when the CSV reader differs

    @property
    def as_read(self) -> str:
        return self.engine or self.response


@dataclass(frozen=True)
class History:
    name: str
    visits: tuple[Visit, ...]
    bor: str
    dcr6: str
    pfs: tuple[int, int]  # (ADY of the PFS event or censoring, CNSR)
    rpfs: tuple[int, int]
    baseline: tuple[dict[str, str], ...] = TARGETS
    death_day: int | None = None
    redated: tuple[int, ...] = field(default=())  # days whose SD became PD (confirmed lesion)


HISTORIES = (
    History(
        "sd-too-early-pd-pr",
        (Visit(35, "SD", SD), Visit(98, "PD", PD), Visit(154, "PR", PR)),
        bor="PD",  # SD on day 35 < 42 is NE for BOR; the PR after PD does not count
        dcr6="N",
        pfs=(98, 0),
        rpfs=(98, 0),
    ),
    History(
        "sd-qualifying-pd",
        (Visit(56, "SD", SD), Visit(112, "PD", PD)),
        bor="SD",
        dcr6="N",
        pfs=(112, 0),
        rpfs=(112, 0),
    ),
    History(
        "pr-pr-sd-month6",
        (
            Visit(56, "PR", PR),
            Visit(112, "PR", PR_52),
            Visit(168, "SD", PR_HELD, engine="PR"),  # EORTC FAQ: PR holds until PD
        ),
        bor="PR",
        dcr6="Y",
        pfs=(168, 1),
        rpfs=(168, 1),
    ),
    History(
        "death-before-month6",
        (Visit(56, "SD", SD), Visit(112, "SD", SD)),
        death_day=130,
        bor="SD",
        dcr6="N",
        pfs=(112, 1),  # PFS counts progression only (protocol)
        rpfs=(130, 0),
    ),
    History(
        "not-evaluable-month6",
        (Visit(56, "SD", SD), Visit(112, "SD", SD), Visit(168, "NE", NE), Visit(224, "SD", SD)),
        bor="SD",
        dcr6="N",
        pfs=(224, 1),
        rpfs=(224, 1),
    ),
    History(
        "cr-throughout",
        (Visit(56, "CR", CR), Visit(112, "CR", CR), Visit(168, "CR", CR)),
        bor="CR",
        dcr6="Y",
        pfs=(168, 1),
        rpfs=(168, 1),
    ),
    History(
        "equivocal-confirmed",
        (
            Visit(56, "SD", SD),
            Visit(112, "SD", SD),
            Visit(168, "SD", SD, new_lesions="equivocal"),
            Visit(224, "PD", SD, new_lesions="yes"),
        ),
        bor="SD",
        dcr6="N",  # PD dated day 168, the landmark assessment
        pfs=(168, 0),
        rpfs=(168, 0),
        redated=(168,),
    ),
    History(
        "equivocal-not-confirmed",
        (
            Visit(56, "SD", SD),
            Visit(168, "SD", SD, new_lesions="equivocal"),
            Visit(224, "SD", SD),
        ),
        bor="SD",
        dcr6="Y",
        pfs=(224, 1),
        rpfs=(224, 1),
    ),
    History(
        "non-target-progression",
        (Visit(56, "SD", SD), Visit(112, "PD", NT_PD)),
        bor="SD",
        dcr6="N",
        pfs=(112, 0),
        rpfs=(112, 0),
    ),
    History(
        "non-cr-non-pd-only",
        (
            Visit(56, "NON-CR/NON-PD", NN),
            Visit(112, "NON-CR/NON-PD", NN),
            Visit(168, "NON-CR/NON-PD", NN),
        ),
        baseline=NON_TARGETS,
        bor="NON-CR/NON-PD",
        dcr6="Y",
        pfs=(168, 1),
        rpfs=(168, 1),
    ),
    History(
        "sd-too-early-then-nothing",
        (Visit(35, "SD", SD),),
        bor="NE",
        dcr6="N",
        pfs=(35, 1),
        rpfs=(35, 1),
    ),
)
