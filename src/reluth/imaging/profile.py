"""PS3.15 Annex E Table E.1-1 as data, and the action it prescribes for one attribute.

The table is ``data/ps3.15_table_e1-1.psv`` (edition and source named in its header). This
module only reads it and resolves, for a tag and a set of options, one of the actions
X (remove), Z (empty), D (dummy), K (keep, recurse into sequences), C (clean), U (new UID).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

TABLE_FILE = "ps3.15_table_e1-1.psv"

# Option key in the table -> (code in (0012,0064), code meaning), DCM coding scheme.
OPTION_CODES: dict[str, tuple[str, str]] = {
    "CG": ("113103", "Clean Graphics Option"),
    "CS": ("113104", "Clean Structured Content Option"),
    "CD": ("113105", "Clean Descriptors Option"),
    "LF": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "LM": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "PC": ("113108", "Retain Patient Characteristics Option"),
    "DI": ("113109", "Retain Device Identity Option"),
    "UID": ("113110", "Retain UIDs Option"),
    "SP": ("113111", "Retain Safe Private Option"),
    "II": ("113112", "Retain Institution Identity Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")

# The options this trial applies (issue 7): dosimetry needs shifted dates, weight/height/sex/age,
# the camera serial number (calibration factor) and cleaned series descriptions.
RELUTH_OPTIONS: tuple[str, ...] = ("LM", "PC", "DI", "CD")


@dataclass(frozen=True)
class Rule:
    tag_pattern: str
    name: str
    basic: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """The table plus the chosen options; ``action(tag)`` is the resolved action or None."""

    rules: dict[int, Rule]
    patterns: tuple[Rule, ...]
    options: tuple[str, ...]
    source: str
    resolved: dict[int, str] = field(default_factory=dict)

    def rule_for(self, tag: int) -> Rule | None:
        rule = self.rules.get(tag)
        if rule is not None:
            return rule
        group = tag >> 16
        if group % 2 == 1:
            return self._pattern("GGGGEEEE")
        if 0x5000 <= group <= 0x50FF:
            return self._pattern("50XXXXXX")
        if 0x6000 <= group <= 0x60FF and (tag & 0xFFFF) in (0x3000, 0x4000):
            return self._pattern(f"60XX{tag & 0xFFFF:04X}")
        return None

    def _pattern(self, key: str) -> Rule | None:
        for rule in self.patterns:
            if rule.tag_pattern == key:
                return rule
        return None

    def action(self, tag: int) -> str | None:
        found = self.resolved.get(tag)
        if found is not None:
            return found
        group = tag >> 16
        if group % 2 == 0 and not (0x5000 <= group <= 0x60FF):
            return None  # the common case: a public attribute the table does not list
        rule = self.rule_for(tag)
        if rule is None:
            return None
        return resolve(rule, self.options)


def resolve(rule: Rule, options: tuple[str, ...]) -> str:
    """An option overrides the basic profile for its attributes; combined basic codes take
    the removal (X) where allowed, Z/D takes Z, and X/Z/U* keeps the reference sequence so the
    UIDs inside it are remapped (references between objects survive)."""
    chosen = [rule.options[o] for o in options if o in rule.options]
    if chosen:
        # Several options naming one attribute: keep wins over clean, clean over remove.
        for wanted in ("K", "C", "X"):
            if wanted in chosen:
                return wanted
        return chosen[0]
    basic = rule.basic
    if basic.endswith("U*"):
        return "K"
    if "/" in basic:
        return basic.split("/")[0]
    return basic


@functools.cache
def load_rules() -> tuple[dict[int, Rule], tuple[Rule, ...], str]:
    text = resources.files("reluth.imaging").joinpath("data", TABLE_FILE).read_text("utf-8")
    rules: dict[int, Rule] = {}
    patterns: list[Rule] = []
    header: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            if not rules:
                header.append(line.lstrip("# "))
            continue
        tag_text, basic, opts, name = line.split("|", 3)
        options = dict(part.split("=") for part in opts.split(";") if part)
        rule = Rule(tag_text, name, basic, options)
        if all(c in "0123456789ABCDEF" for c in tag_text):
            rules[int(tag_text, 16)] = rule
        else:
            patterns.append(rule)
    return rules, tuple(patterns), " ".join(header[:7])


@functools.cache
def make_profile(options: tuple[str, ...] = RELUTH_OPTIONS) -> Profile:
    unknown = [o for o in options if o not in OPTION_CODES]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}")
    rules, patterns, source = load_rules()
    resolved = {tag: resolve(rule, options) for tag, rule in rules.items()}
    return Profile(rules, patterns, options, source, resolved)
