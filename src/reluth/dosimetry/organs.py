"""VOI names → organs: one configurable table (data/organ_names.yaml) used for S-values, kidney
BED, cumulation and limits, so that a result never depends on a VOI being spelt "kidneys".

An RTSTRUCT usually has ``Kidney_L``/``Kidney_R`` (or ``Rein G``/``Rein D`` in French centres);
both map to ``kidney_left``/``kidney_right``, whose union is the organ ``kidneys`` that the
kidney limits (23 Gy absorbed, BED 28/40 Gy) are stated for.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from reluth.i18n import N_
from reluth.i18n.reasons import invalid


def normalise(name: str) -> str:
    """Case, accents and separators removed: "Rein_G", "rein g" and "REIN-G" are one name."""
    text = unicodedata.normalize("NFKD", str(name))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.sub(r"[\s_\-./]+", " ", text).strip()


@dataclass(frozen=True)
class OrganNames:
    """Aliases (normalised) → organ; combined organs → their parts; organ → S-value row."""

    aliases: Mapping[str, str]
    combined: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    svalue_rows: Mapping[str, str] = field(default_factory=dict)

    def organ_of(self, voi_name: str) -> str | None:
        """The organ a VOI name stands for, or None if the table does not know it."""
        key = normalise(voi_name)
        return self.aliases.get(key)

    def canonical(self, name: str) -> str:
        """The organ of a name if known, else the name unchanged (tumours, remainder...)."""
        return self.organ_of(name) or name

    def parent_of(self, organ: str) -> str | None:
        """The combined organ an organ is part of (kidney_left → kidneys)."""
        for parent, parts in self.combined.items():
            if organ in parts:
                return parent
        return None

    def family(self, organ: str) -> tuple[str, ...]:
        """The organ and its parts: what a limit stated for the organ is checked on."""
        return (organ, *self.combined.get(organ, ()))

    def svalue_organ(self, voi_name: str) -> str | None:
        """The S-value table row for a VOI name (kidney_left → kidneys), if any."""
        organ = self.organ_of(voi_name)
        if organ is None:
            return None
        return self.svalue_rows.get(organ, organ)

    def with_aliases(self, extra: Mapping[str, str]) -> OrganNames:
        """A copy with more aliases (alias → organ), e.g. from a case file."""
        aliases = dict(self.aliases)
        for alias, organ in extra.items():
            if not isinstance(alias, str) or not isinstance(organ, str) or not organ.strip():
                raise invalid(
                    "organ_names",
                    "unaccepted_organ_names",
                    N_("{alias}: {organ}"),
                    N_("a mapping alias -> organ name"),
                    alias=repr(alias),
                    organ=repr(organ),
                )
            aliases[normalise(alias)] = organ.strip()
            aliases.setdefault(normalise(organ), organ.strip())
        return OrganNames(aliases, self.combined, self.svalue_rows)

    def groups_present(self, voi_names: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Combined organs whose every part is among the VOI names and which no VOI names
        itself: combined organ → the VOI names of its parts (in the table's order)."""
        names = list(voi_names)
        organ_to_voi: dict[str, str] = {}
        for n in names:
            organ = self.organ_of(n)
            if organ is not None:
                if organ in organ_to_voi:
                    raise invalid(
                        "vois",
                        "both_name_organ_2",
                        N_("{organ_to_voi} and {n} both name the organ {organ}"),
                        N_("one VOI per organ"),
                        organ_to_voi=repr(organ_to_voi[organ]),
                        n=repr(n),
                        organ=str(organ),
                    )
                organ_to_voi[organ] = n
        out: dict[str, tuple[str, ...]] = {}
        for parent, parts in self.combined.items():
            if parent in organ_to_voi or not all(p in organ_to_voi for p in parts):
                continue
            out[parent] = tuple(organ_to_voi[p] for p in parts)
        return out


def parse_organ_names(doc: Any) -> OrganNames:
    """The table from its YAML document (format: data/organ_names.yaml)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("organs"), dict):
        raise invalid(
            "organ_names",
            "expected_mapping_organs",
            N_("expected a mapping with 'organs'"),
            N_("organ_names.yaml"),
        )
    aliases: dict[str, str] = {}
    for organ, names in doc["organs"].items():
        if not isinstance(names, list):
            raise invalid(
                f"organ_names.organs.{organ}",
                "unaccepted_organ_names_organs_organ",
                N_("{names}"),
                N_("a list of names"),
                names=repr(names),
            )
        for alias in [organ, *names]:
            key = normalise(str(alias))
            if aliases.get(key, organ) != organ:
                raise invalid(
                    f"organ_names.organs.{organ}",
                    "also_alias",
                    N_("{alias} is also an alias of {aliases}"),
                    N_("each alias names one organ"),
                    alias=repr(alias),
                    aliases=str(aliases[key]),
                )
            aliases[key] = str(organ)
    combined: dict[str, tuple[str, ...]] = {}
    for parent, parts in (doc.get("combined") or {}).items():
        if not isinstance(parts, list) or len(parts) < 2:
            raise invalid(
                f"organ_names.combined.{parent}",
                "unaccepted_organ_names_combined_parent",
                N_("{parts}"),
                N_(">= 2 organs"),
                parts=repr(parts),
            )
        combined[str(parent)] = tuple(str(p) for p in parts)
    rows = {str(k): str(v) for k, v in (doc.get("svalue_organ") or {}).items()}
    return OrganNames(aliases, combined, rows)


@lru_cache(maxsize=1)
def default_organ_names() -> OrganNames:
    """The shipped table (data/organ_names.yaml)."""
    text = (
        resources.files("reluth.dosimetry")
        .joinpath("data")
        .joinpath("organ_names.yaml")
        .read_text("utf-8")
    )
    return parse_organ_names(yaml.safe_load(text))
