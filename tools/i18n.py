"""The translation catalogues: extract, update, compile and check (``make lint`` runs check).

    python tools/i18n.py extract   # src/reluth/locale/messages.pot from the sources (babel.cfg)
    python tools/i18n.py update    # merge the template into every language's messages.po
    python tools/i18n.py compile   # messages.po -> messages.mo (make install does it)
    python tools/i18n.py check     # fails on an untranslated, fuzzy, missing or stale entry

``check`` extracts afresh into memory and compares with each checked catalogue (French by
default; ``--lang``): a string in the sources that the catalogue lacks (stale catalogue), an
entry no source uses any more (obsolete), an empty or fuzzy translation, or a translation whose
``{placeholders}``/``%(name)s`` differ from the source's, each fail with the file and message.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "src" / "reluth" / "locale"
TEMPLATE = LOCALE_DIR / "messages.pot"
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "N_": None,
}
#: Languages whose catalogue must be complete (English is the source language).
CHECKED = ("fr",)
_PLACEHOLDER = re.compile(r"\{[a-z_]*\}|%\([a-z_]+\)s")


def extract(root: Path = ROOT) -> Catalog:
    """Every marked string of the Python sources and templates, as babel.cfg maps them."""
    with (root / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    catalog = Catalog(project="reluth", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        catalog.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
        )
    for text in generated_strings():
        catalog.add(
            text,
            None,
            [("src/reluth/web/screening_form.py", 0)],
            auto_comments=["generated: a screening-form label from the patient-file model"],
        )
    return catalog


def generated_strings() -> set[str]:
    """Strings the pages show that no source spells out: the screening form's section titles,
    labels, column heads and help, made from the eligibility engine's patient-file model."""
    from reluth.web import screening_form

    found: set[str] = set()
    for section in screening_form.sections():
        found |= {section.title, section.help or "", *section.row_labels, *section.columns}
        for item in (*section.inputs, *(i for row in section.rows for i in row)):
            found |= {item.label, item.help or ""}
    return {text for text in found if text and not text.isdigit()}


def _key(message: Message) -> tuple[str, str | None]:
    ident = message.id[0] if isinstance(message.id, tuple | list) else message.id
    return str(ident), message.context


def problems(template: Catalog, catalog: Catalog, name: str) -> list[str]:
    """What is wrong with ``catalog`` (named ``name`` in the messages) against the sources."""
    found: list[str] = []
    wanted = {_key(m): m for m in template if m.id}
    have = {_key(m): m for m in catalog if m.id}
    for key in sorted(wanted.keys() - have.keys(), key=str):
        found.append(f"{name}: missing (run tools/i18n.py update): {key[0]!r}")
    for key in sorted(have.keys() - wanted.keys(), key=str):
        found.append(f"{name}: stale, no source uses it: {key[0]!r}")
    for key in sorted(have.keys() & wanted.keys(), key=str):
        message = have[key]
        strings = message.string if isinstance(message.string, tuple | list) else [message.string]
        if not all(strings):
            found.append(f"{name}: untranslated: {key[0]!r}")
        elif message.fuzzy:
            found.append(f"{name}: fuzzy (check and remove the flag): {key[0]!r}")
        else:
            source = set(_PLACEHOLDER.findall(key[0]))
            for text in strings:
                if set(_PLACEHOLDER.findall(str(text))) != source:
                    found.append(f"{name}: placeholders differ from the source: {key[0]!r}")
    return found


def _read(path: Path, lang: str) -> Catalog:
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / "messages.po"


def check(langs: Iterable[str] = CHECKED, locale_dir: Path = LOCALE_DIR, root: Path = ROOT) -> int:
    template = extract(root)
    found: list[str] = []
    for lang in langs:
        path = po_path(lang, locale_dir)
        if not path.exists():
            found.append(f"{path}: no catalogue")
            continue
        found += problems(template, _read(path, lang), str(path.relative_to(locale_dir.parent)))
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{len(found)} translation problem(s)", file=sys.stderr)
        return 1
    print(f"translations complete: {len(template)} messages", file=sys.stderr)
    return 0


def write_template(template: Catalog) -> None:
    with TEMPLATE.open("wb") as handle:
        write_po(
            handle, template, width=100, omit_header=False, sort_output=True, include_lineno=False
        )


def update(template: Catalog) -> None:
    """Merge the sources' strings into each catalogue: new ones empty, gone ones dropped."""
    for path in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")):
        lang = path.parent.parent.name
        catalog = _read(path, lang)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with path.open("wb") as handle:
            write_po(
                handle,
                catalog,
                width=100,
                sort_output=True,
                ignore_obsolete=True,
                include_lineno=False,
            )


def compile_all(locale_dir: Path = LOCALE_DIR) -> None:
    for path in sorted(locale_dir.glob("*/LC_MESSAGES/messages.po")):
        catalog = _read(path, path.parent.parent.name)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        path.with_suffix(".mo").write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("extract", "update", "compile", "check"))
    parser.add_argument("--lang", action="append", help="catalogue to check (default: fr)")
    parser.add_argument("--locale-dir", type=Path, default=LOCALE_DIR)
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.lang or CHECKED, args.locale_dir)
    if args.command == "compile":
        compile_all(args.locale_dir)
        return 0
    template = extract()
    write_template(template)
    if args.command == "update":
        update(template)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
