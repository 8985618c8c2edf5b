"""A map from another EDC's OIDs to reluth's (``reluth import odm FILE --map MAP.yaml``).

Each EDC names its study events, forms, item groups and items with its own OIDs (OpenClinica:
``SE_BASELINE``, ``F_MEDHIST_V10``, ``IG_MEDHI_UNGROUPED``, ``I_MEDHI_COND``); CDISC ODM 1.3.2
(sections 2.7 and 4) fixes the structure, not the names, nor the coded values of a code list.
The map names, for each foreign OID, the registry's OID (``SE.<visit>``, ``F.<form>``,
``IG.<form>``, ``I.<form>.<field>``; ``I.<form>.<field>/<key>`` for one answer of an item
list such as a questionnaire's ``items``), constant items a foreign form implies (``set``),
the sites (``LOC.<centre>``), and per reluth item the foreign coded values. It is applied to
the document before anything is read; an OID of the file the map does not name is refused,
all of them in one message, so nothing is imported under a guessed meaning.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from reluth.errors import ValidationError
from reluth.i18n import N_
from reluth.i18n.reasons import Reason, invalid

#: The map's sections: the element and attribute each renames, and the prefix of a reluth OID.
SECTIONS = {
    "study_events": ("StudyEventData", "StudyEventOID", "SE."),
    "forms": ("FormData", "FormOID", "F."),
    "item_groups": ("ItemGroupData", "ItemGroupOID", "IG."),
    "items": ("ItemData", "ItemOID", "I."),
    "locations": ("SiteRef", "LocationOID", "LOC."),
}
MAX_BYTES = 2 * 1024 * 1024
_NS = "http://www.cdisc.org/ns/odm/v1.3"


def _q(tag: str) -> str:
    return f"{{{_NS}}}{tag}"


@dataclass(frozen=True)
class FormTarget:
    oid: str
    #: constant items the foreign form implies (field name -> value), e.g. the instrument
    set: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    """The foreign OIDs of each section -> reluth's, and coded values by reluth ItemOID."""

    sections: dict[str, dict[str, str]]
    forms: dict[str, FormTarget]
    values: dict[str, dict[str, str]]


def _text_map(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(f"map {where}", type(raw).__name__, "a mapping foreign OID -> OID")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str | int | float | bool):
            raise ValidationError(f"map {where}.{key}", repr(value), "one OID or value (text)")
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def load(content: bytes) -> Mapping:
    """The map from its YAML text (ValidationError naming the section or entry)."""
    if len(content) > MAX_BYTES:
        raise invalid(
            "map",
            "file_too_large",
            N_("{size} bytes"),
            Reason("at_most_bytes", N_("at most {limit} bytes"), {"limit": MAX_BYTES}),
            size=len(content),
        )
    try:
        data = yaml.safe_load(content.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise invalid(
            "map",
            "not_yaml",
            N_("not YAML ({problem})"),
            N_("a YAML map"),
            problem=type(exc).__name__,
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("map", type(data).__name__, "a YAML mapping of sections")
    known = (*SECTIONS, "values")
    for key in data:
        if key not in known:
            raise invalid(
                f"map section {key!r}", "unknown_map_section", N_("unknown"), ", ".join(known)
            )
    sections: dict[str, dict[str, str]] = {}
    forms: dict[str, FormTarget] = {}
    for name, (_el, _attr, prefix) in SECTIONS.items():
        raw = data.get(name) or {}
        if not isinstance(raw, dict):
            raise ValidationError(f"map {name}", type(raw).__name__, "foreign OID -> OID")
        plain: dict[str, str] = {}
        for foreign, target in raw.items():
            where = f"map {name}.{foreign}"
            if name == "forms" and isinstance(target, dict):
                oid = target.get("oid")
                forms[str(foreign)] = FormTarget(str(oid), _text_map(target.get("set"), where))
                target = oid
            if not isinstance(target, str) or not target.startswith(prefix):
                raise ValidationError(where, repr(target), f"a reluth OID {prefix}...")
            plain[str(foreign)] = target
            if name == "forms" and str(foreign) not in forms:
                forms[str(foreign)] = FormTarget(target)
        sections[name] = plain
    values_raw = data.get("values") or {}
    if not isinstance(values_raw, dict):
        raise ValidationError("map values", type(values_raw).__name__, "ItemOID -> {foreign: code}")
    values = {str(k): _text_map(v, f"values.{k}") for k, v in values_raw.items()}
    for item in values:
        if not item.startswith("I."):
            raise invalid(
                f"map values.{item}",
                "not_an_item_oid",
                N_("not a reluth ItemOID"),
                "I.<form>.<field>",
            )
    return Mapping(sections, forms, values)


def apply(root: ET.Element, mapping: Mapping) -> dict[str, Any]:
    """Rename every OID of the document's ClinicalData as the map says, add the constant items
    of mapped forms, translate coded values; refuse (one ValidationError naming each) the OIDs
    the map does not name. Returns what was used: per section, foreign -> reluth and the count
    of elements; the values translated per item."""
    unknown: dict[str, set[str]] = {}
    used: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in SECTIONS}
    for name, (element, attr, prefix) in SECTIONS.items():
        table = mapping.sections.get(name, {})
        for el in root.iter(_q(element)):
            oid = el.get(attr) or ""
            if oid in table:
                el.set(attr, table[oid])
                used[name][(oid, table[oid])] += 1
                if name == "forms":
                    _add_constants(el, mapping.forms[oid])
            elif not oid.startswith(prefix):
                unknown.setdefault(f"{element}/@{attr}", set()).add(oid)
    if unknown:
        named = "; ".join(f"{where} {', '.join(sorted(oids))}" for where, oids in unknown.items())
        raise invalid(
            "map",
            "unmapped_oids",
            N_("OIDs of the file without a mapping: {named}"),
            N_("an entry for each in the map (study_events, forms, item_groups, items, locations)"),
            named=named,
        )
    translated: Counter[str] = Counter()
    for item in root.iter(_q("ItemData")):
        oid = item.get("ItemOID") or ""
        codes = mapping.values.get(oid)
        value = item.get("Value")
        if codes is None or value is None:
            continue
        if value not in codes:
            raise invalid(
                f"ItemData ItemOID={oid} Value={value}",
                "untranslated_code",
                N_("a coded value the map does not translate"),
                ", ".join(sorted(codes)),
            )
        item.set("Value", codes[value])
        translated[oid] += 1
    report: dict[str, Any] = {
        name: {f"{a} -> {b}": n for (a, b), n in sorted(c.items())} for name, c in used.items() if c
    }
    if translated:
        report["values"] = dict(sorted(translated.items()))
    return report


def _add_constants(form: ET.Element, target: FormTarget) -> None:
    """The items a foreign form implies (``set``), added to its first item group."""
    if not target.set:
        return
    group = form.find(_q("ItemGroupData"))
    fid = target.oid.removeprefix("F.")
    if group is None:
        group = ET.SubElement(form, _q("ItemGroupData"), {"ItemGroupOID": f"IG.{fid}"})
    present = {i.get("ItemOID") for i in group.iter(_q("ItemData"))}
    for name, value in target.set.items():
        oid = f"I.{fid}.{name}"
        if oid not in present:
            ET.SubElement(group, _q("ItemData"), {"ItemOID": oid, "Value": value})
