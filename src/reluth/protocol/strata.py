"""The four stratification factors of ReLUTH, derived from the patient file (pure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from reluth.errors import ValidationError
from reluth.protocol.definition import Protocol, load_protocol
from reluth.protocol.eligibility import estimate_egfr
from reluth.protocol.patient import PatientFile


@dataclass(frozen=True)
class Strata:
    disease_control_first_prrt: str  # lt18 | ge18
    progression_type: str  # rad | nonrad
    renal_function: str  # lt60 | ge60
    intercurrent_treatment: str  # yes | no

    @property
    def code(self) -> str:
        """Stable stratum code, e.g. ``DCge18-PRrad-GFRge60-ITno``."""
        return (
            f"DC{self.disease_control_first_prrt}-PR{self.progression_type}"
            f"-GFR{self.renal_function}-IT{self.intercurrent_treatment}"
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "disease_control_first_prrt": self.disease_control_first_prrt,
            "progression_type": self.progression_type,
            "renal_function": self.renal_function,
            "intercurrent_treatment": self.intercurrent_treatment,
        }

    @classmethod
    def from_code(cls, code: str) -> Strata:
        try:
            dc, pr, gfr, it = code.split("-")
            return cls(
                dc.removeprefix("DC"),
                pr.removeprefix("PR"),
                gfr.removeprefix("GFR"),
                it.removeprefix("IT"),
            )
        except ValueError:
            raise ValidationError(
                "stratum", f"not a stratum code: {code!r}", "e.g. DCge18-PRrad-GFRge60-ITno"
            ) from None


def derive_strata(patient: PatientFile, protocol: Protocol | None = None) -> Strata:
    """The patient's stratum; a missing input is a ValidationError naming the field."""
    protocol = protocol or load_protocol()
    dc_factor = protocol.factor("disease_control_first_prrt")
    months = patient.first_prrt.disease_control_months
    if months is None:
        raise ValidationError("first_prrt.disease_control_months", "needed for the stratum")
    assert dc_factor.threshold is not None
    dc = dc_factor.levels["at_or_above" if months >= dc_factor.threshold else "below"]

    prog_factor = protocol.factor("progression_type")
    p = patient.progression
    if p.radiological is None:
        raise ValidationError("progression.radiological", "needed for the stratum", "true or false")
    prog = prog_factor.levels["radiological" if p.radiological else "non_radiological"]

    gfr_factor = protocol.factor("renal_function")
    egfr, how = estimate_egfr(patient, protocol)
    if egfr is None:
        raise ValidationError("labs.creatinine", f"eGFR needed for the stratum ({how})")
    assert gfr_factor.threshold is not None
    gfr = gfr_factor.levels["at_or_above" if egfr >= gfr_factor.threshold else "below"]

    it_factor = protocol.factor("intercurrent_treatment")
    it_value = patient.history.intercurrent_treatment
    if it_value is None:
        raise ValidationError(
            "history.intercurrent_treatment", "needed for the stratum", "true or false"
        )
    it = it_factor.levels["yes" if it_value else "no"]
    return Strata(dc, prog, gfr, it)


def all_strata(protocol: Protocol | None = None) -> list[Strata]:
    """Every combination of factor levels (16 for ReLUTH), in a stable order."""
    protocol = protocol or load_protocol()
    order = (
        "disease_control_first_prrt",
        "progression_type",
        "renal_function",
        "intercurrent_treatment",
    )
    levels = [sorted(set(protocol.factor(code).levels.values())) for code in order]
    return [Strata(*combo) for combo in itertools.product(*levels)]
