"""Coding of adverse-event terms with the shipped CTCAE v5.0 dictionary (pure, read-only data).

``data/ctcae_v5_terms.csv`` is the NCI CTCAE v5.0 term list (837 terms) with each term's
MedDRA v20.1 code and system organ class; CTCAE v5.0 terms are MedDRA lowest level terms, so
the code is stored as the LLT code. MedDRA preferred-term codes are not shipped (MedDRA is
licensed by the ICH MSSO): a coder records them (``sae``-independent service
:func:`reluth.safety.service.recode_adverse_event`).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "ctcae_v5_terms.csv"


@dataclass(frozen=True)
class Term:
    term: str
    meddra_code: str  # MedDRA v20.1 LLT code of the CTCAE term
    soc: str


@dataclass(frozen=True)
class Dictionary:
    name: str  # "CTCAE"
    version: str
    meddra_version: str
    source: str
    terms: tuple[Term, ...]

    @property
    def label(self) -> str:
        """What ``adverse_events.coding_dictionary`` stores."""
        return f"{self.name} v{self.version.split()[0]} / MedDRA {self.meddra_version}"

    @functools.cached_property
    def by_term(self) -> dict[str, Term]:
        return {t.term.casefold(): t for t in self.terms}

    @functools.cached_property
    def by_code(self) -> dict[str, Term]:
        return {t.meddra_code: t for t in self.terms}

    @functools.cached_property
    def socs(self) -> tuple[str, ...]:
        return tuple(sorted({t.soc for t in self.terms}))


@functools.cache
def ctcae() -> Dictionary:
    """The shipped CTCAE v5.0 dictionary (read once)."""
    meta: dict[str, str] = {}
    body: list[str] = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            meta[key.strip()] = value.strip()
        else:
            body.append(line)
    rows = csv.DictReader(body)
    terms = tuple(Term(r["term"], r["meddra_code"], r["soc"]) for r in rows)
    return Dictionary(
        meta.get("dictionary", "CTCAE"),
        meta.get("version", "5.0"),
        meta.get("meddra_version", ""),
        meta.get("source", ""),
        terms,
    )


def lookup(term: str) -> Term | None:
    """The dictionary entry of ``term`` (case and surrounding spaces ignored), if any."""
    return ctcae().by_term.get(term.strip().casefold())


def search(query: str, limit: int = 20) -> list[Term]:
    """Terms matching what was typed: those starting with it first, then those containing
    each typed word, alphabetically; nothing for fewer than 2 characters."""
    q = " ".join(query.casefold().split())
    if len(q) < 2:
        return []
    words = q.split()
    starts, contains = [], []
    for t in ctcae().terms:
        name = t.term.casefold()
        if name.startswith(q):
            starts.append(t)
        elif all(w in name for w in words):
            contains.append(t)
    found = sorted(starts, key=lambda t: t.term) + sorted(contains, key=lambda t: t.term)
    return found[:limit]


def coded(term: str) -> dict[str, str | None]:
    """The coding columns of an adverse event whose term is ``term``: the dictionary's when
    the term is a CTCAE v5.0 term, else empty (uncoded: the coder codes it)."""
    entry = lookup(term)
    if entry is None:
        return dict.fromkeys(
            ("meddra_term", "meddra_llt_code", "meddra_pt_code", "meddra_soc", "coding_dictionary")
        )
    return {
        "meddra_term": entry.term,
        "meddra_llt_code": entry.meddra_code,
        "meddra_pt_code": None,
        "meddra_soc": entry.soc,
        "coding_dictionary": ctcae().label,
    }
