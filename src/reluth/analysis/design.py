"""What the analysis takes from the protocol: arms, strata, the month, the RECIST options.

The analysis datasets' arm values (``ARM``, ``ARMCD``), their stratification variables
(``STRPFS`` ...) with their labels and source-CSV columns, the days in a month and the RECIST
engine's options (month-6 landmark, minimum SD duration) are all in the protocol file
(``arms[].analysis``, ``stratification[].analysis``, ``schedule``); one
:class:`AnalysisDesign` per protocol carries them through every derivation, table and figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from reluth.i18n import N_
from reluth.i18n.reasons import invalid
from reluth.protocol.definition import Protocol
from reluth.response import recist


@dataclass(frozen=True)
class StratumVariable:
    """One stratification factor in the analysis datasets."""

    variable: str  # ADSL/ADTTE variable, e.g. STRPFS
    factor: str  # the protocol's factor code, as randomization stores it
    label: str  # variable label (<= 40 characters, SAS transport)
    description: str  # its levels, e.g. "(<18 vs >=18 months)"
    short_label: str  # in tables and forest plots
    source_column: str  # column of subjects.csv


@dataclass(frozen=True)
class AnalysisDesign:
    protocol_version: str  # the protocol file's version, e.g. "1.0"
    arms: tuple[str, str]  # ARM values: the treated (experimental) arm, then the control
    arm_codes: dict[str, str]  # ARM -> ARMCD
    arm_aliases: dict[str, str]  # accepted spellings in sources (lower case) -> ARM
    strata: tuple[StratumVariable, ...]
    days_per_month: float
    recist_options: recist.RecistOptions
    pre_randomization_cycles: int  # second-PRRT cycles every included patient receives

    @classmethod
    def of(cls, protocol: Protocol) -> AnalysisDesign:
        """The design of ``protocol`` (memoized with it)."""
        design: AnalysisDesign = protocol.memo(("analysis.design",), lambda: cls._build(protocol))
        return design

    @classmethod
    def _build(cls, protocol: Protocol) -> AnalysisDesign:
        if not protocol.sample_size.non_evaluable_counts_as_failure:
            raise invalid(
                "sample_size.non_evaluable_counts_as_failure",
                "analysis_counts_non_evaluable_patients",
                N_("the analysis counts non-evaluable patients as DCR6 failures (SAP)"),
                N_("true"),
            )
        treated = [a for a in protocol.arms if protocol.arm_cycles(a.code)]
        untreated = [a for a in protocol.arms if not protocol.arm_cycles(a.code)]
        if len(treated) != 1 or len(untreated) != 1:
            raise invalid(
                "arms",
                "analysis_compares_one_treated_arm",
                N_("the analysis compares one treated arm with one untreated arm"),
            )
        arms = (treated[0].analysis.arm, untreated[0].analysis.arm)
        aliases: dict[str, str] = {}
        for a in protocol.arms:
            aliases[a.analysis.arm.lower()] = a.analysis.arm
            aliases[a.code.lower()] = a.analysis.arm
        return cls(
            protocol_version=protocol.version,
            arms=arms,
            arm_codes={a.analysis.arm: a.analysis.armcd for a in protocol.arms},
            arm_aliases=aliases,
            strata=tuple(
                StratumVariable(
                    f.analysis.variable,
                    f.code,
                    f.analysis.label,
                    f.analysis.description,
                    f.analysis.short_label,
                    f.analysis.source_column,
                )
                for f in protocol.stratification
            ),
            days_per_month=float(protocol.schedule.days_per_month),
            recist_options=recist.RecistOptions.from_protocol(protocol),
            pre_randomization_cycles=len(protocol.pre_randomization_cycles),
        )

    @property
    def experimental(self) -> str:
        return self.arms[0]

    @property
    def control(self) -> str:
        return self.arms[1]

    @property
    def strata_variables(self) -> tuple[str, ...]:
        return tuple(s.variable for s in self.strata)

    @property
    def strata_descriptions(self) -> dict[str, str]:
        """Variable -> its description (levels), e.g. STRPFS: "... (<18 vs >=18 months)"."""
        return {s.variable: s.description for s in self.strata}

    @property
    def month6_day(self) -> int:
        return self.recist_options.landmark_day

    @property
    def month6_window_days(self) -> int:
        return self.recist_options.landmark_window_days
