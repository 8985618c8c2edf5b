"""Organ S-values for Lu-177 (shipped data with sources) and mass scaling to the patient.

S_patient = S_e · (m_phantom / m_patient) + S_γ · (m_phantom / m_patient)^(2/3): the electron
part scales linearly with mass (full absorption), the photon part to the 2/3 power. The shipped
tables give totals only; the split is derived as S_e = E_e / m_phantom (see the data file).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from reluth.dosimetry.physics import LOCAL_DEPOSITION_MGY_G_PER_MBQ_S, SECONDS_PER_HOUR
from reluth.i18n import N_
from reluth.i18n.reasons import invalid

SEXES = ("male", "female")


@dataclass(frozen=True)
class OrganSValue:
    organ: str
    sex: str
    s_mgy_per_mbq_s: float
    phantom_mass_g: float
    split: str
    source: str

    @property
    def electron_part(self) -> float:
        if self.split == "derived":
            return min(LOCAL_DEPOSITION_MGY_G_PER_MBQ_S / self.phantom_mass_g, self.s_mgy_per_mbq_s)
        return self.s_mgy_per_mbq_s

    @property
    def photon_part(self) -> float:
        return self.s_mgy_per_mbq_s - self.electron_part


@dataclass(frozen=True)
class CrossSValue:
    target: str
    source_region: str
    sex: str
    s_mgy_per_mbq_s: float
    source_mass_g: float
    source: str


def read_data_csv(name: str) -> list[dict[str, str]]:
    """Rows of a shipped CSV (lines starting with # are provenance comments)."""
    text = (
        resources.files("reluth.dosimetry")
        .joinpath("data")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


@lru_cache(maxsize=1)
def organ_table() -> dict[tuple[str, str], OrganSValue]:
    table = {}
    for r in read_data_csv("lu177_organ_svalues.csv"):
        sv = OrganSValue(
            r["organ"],
            r["sex"],
            float(r["s_mgy_per_mbq_s"]),
            float(r["phantom_mass_g"]),
            r["split"],
            r["source"],
        )
        table[(sv.organ, sv.sex)] = sv
    return table


@lru_cache(maxsize=1)
def cross_table() -> dict[tuple[str, str, str], CrossSValue]:
    table = {}
    for r in read_data_csv("lu177_cross_svalues.csv"):
        sv = CrossSValue(
            r["target"],
            r["source_region"],
            r["sex"],
            float(r["s_mgy_per_mbq_s"]),
            float(r["source_mass_g"]),
            r["source"],
        )
        table[(sv.target, sv.source_region, sv.sex)] = sv
    return table


def organs() -> list[str]:
    return sorted({k[0] for k in organ_table()})


def organ_svalue(organ: str, sex: str) -> OrganSValue:
    if sex not in SEXES:
        raise invalid(
            "sex",
            "unknown_sex",
            N_("unknown sex {sex}"),
            N_("{sexes}"),
            sex=repr(sex),
            sexes=", ".join(SEXES),
        )
    try:
        return organ_table()[(organ, sex)]
    except KeyError:
        raise invalid(
            "svalue_organ",
            "no_s_value_organ",
            N_("no S-value for organ {organ}"),
            N_("{organs}"),
            organ=repr(organ),
            organs=", ".join(organs()),
        ) from None


def scaled_svalue(sv: OrganSValue, patient_mass_g: float | None) -> float:
    """The S-value scaled to the patient's organ mass (phantom value if the mass is None)."""
    if patient_mass_g is None:
        return sv.s_mgy_per_mbq_s
    if not patient_mass_g > 0:
        raise invalid(
            "mass_g",
            "organ_mass_g",
            N_("organ mass {patient_mass_g} g"),
            N_("a mass > 0 g"),
            patient_mass_g=repr(patient_mass_g),
        )
    ratio = sv.phantom_mass_g / patient_mass_g
    return sv.electron_part * ratio + sv.photon_part * ratio ** (2.0 / 3.0)


def organ_self_dose_gy(
    tia_mbq_h: float, organ: str, sex: str, patient_mass_g: float | None = None
) -> float:
    """Self-irradiation absorbed dose (Gy) of an organ from its time-integrated activity."""
    s = scaled_svalue(organ_svalue(organ, sex), patient_mass_g)
    return tia_mbq_h * SECONDS_PER_HOUR * s / 1000.0
