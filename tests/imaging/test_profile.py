from __future__ import annotations

import pytest

from reluth.imaging.profile import RELUTH_OPTIONS, Rule, load_rules, make_profile, resolve


def test_table_loads_with_its_source_named() -> None:
    rules, patterns, source = load_rules()
    assert len(rules) > 450
    assert {p.tag_pattern for p in patterns} == {"50XXXXXX", "60XX4000", "60XX3000", "GGGGEEEE"}
    assert "Table E.1-1" in source and "2019e" in source
    for rule in rules.values():
        assert set(rule.basic.split("/")) <= {"X", "Z", "D", "U", "U*"}, rule
        assert set(rule.options.values()) <= {"K", "C", "X"}, rule


@pytest.mark.parametrize(
    ("tag", "basic", "reluth"),
    [
        (0x00101030, "X", "K"),  # Patient's Weight: Retain Patient Characteristics
        (0x00101020, "X", "K"),  # Patient's Size
        (0x00101010, "X", "K"),  # Patient's Age
        (0x00100040, "Z", "K"),  # Patient's Sex
        (0x00181000, "X", "K"),  # Device Serial Number: Retain Device Identity
        (0x00080022, "X", "C"),  # Acquisition Date: Modified Dates
        (0x00181078, "X", "C"),  # Radiopharmaceutical Start DateTime (supplement)
        (0x0008103E, "X", "C"),  # Series Description: Clean Descriptors
        (0x00100010, "Z", "Z"),  # Patient's Name
        (0x00100030, "Z", "Z"),  # Birth Date stays empty
        (0x00080080, "X", "X"),  # Institution Name (no Retain Institution Identity)
        (0x00080018, "U", "U"),  # SOP Instance UID
        (0x00200052, "U", "U"),  # Frame of Reference UID
        (0x00081140, "K", "K"),  # Referenced Image Sequence X/Z/U*: kept, UIDs inside remapped
        (0x00091001, "X", "X"),  # private
        (0x60004000, "X", "X"),  # overlay comments
    ],
)
def test_actions_basic_and_with_reluth_options(tag: int, basic: str, reluth: str) -> None:
    assert make_profile(()).action(tag) == basic
    assert make_profile(RELUTH_OPTIONS).action(tag) == reluth


def test_attributes_outside_the_table_are_kept() -> None:
    profile = make_profile()
    for tag in (0x00181074, 0x00181075, 0x00541001, 0x00541300, 0x00281053, 0x00540012):
        assert profile.action(tag) is None


def test_combined_codes_resolve() -> None:
    assert resolve(Rule("x", "n", "X/Z"), ()) == "X"
    assert resolve(Rule("x", "n", "Z/D"), ()) == "Z"
    assert resolve(Rule("x", "n", "X/Z/D", {"DI": "K"}), ("DI",)) == "K"
    assert resolve(Rule("x", "n", "X", {"PC": "C", "CD": "C"}), ("PC", "CD")) == "C"


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ValueError):
        make_profile(("NOPE",))
