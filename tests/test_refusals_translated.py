"""Issue 18: no error a person reads is written in English only. Every ``raise`` of a reluth
error whose message is a literal (a string, an f-string, ``"...".format(...)``, ``"..." % x``)
must instead be a coded refusal (``reluth.i18n.reasons.refusal``: a stable code, a marked
template and typed values, rendered in the reader's language), a marked constant (``N_(...)``,
``gettext(...)``), or a ``ValidationError`` whose ``code`` has a template in
``reluth.i18n.messages.TEMPLATES``. The scan reads the sources with :mod:`ast`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from reluth.i18n.messages import TEMPLATES

SRC = Path(__file__).resolve().parents[1] / "src" / "reluth"

#: The error classes people are shown (``reluth.errors`` and its subclasses in the sources).
ERRORS = {
    "ReluthError",
    "ValidationError",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "PreconditionFailed",
    "NotConfigured",
    "Locked",
    "LoginFailed",
}
MARKERS = {"N_", "gettext", "_", "ngettext", "pgettext"}

#: Parts of the sources (a package under src/reluth, or a top-level module) whose refusals
#: are not yet all coded. Each group is one piece of work; remove a line when it is done.
NOT_YET: set[str] = {
    # clinical: patients, forms of the eCRF, safety, treatment, QoL, RECIST
    # trial operations: store, registry, queries, lifecycle, auth, randomization, web
    # imaging and ODM
    # dosimetry, analysis, simulation
}


def _part(path: Path) -> str:
    return path.relative_to(SRC).parts[0]


def _literal(node: ast.expr) -> bool:
    """A message formatted in the source language at the raise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return _literal(node.left) or _literal(node.right)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and _literal(node.func.value)
    )


def _coded(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
            return keyword.value.value in TEMPLATES
    return False


def english_only(node: ast.AST) -> str | None:
    """The error's class name if ``node`` raises a reluth error with a literal message."""
    if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
        return None
    func = node.exc.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if name not in ERRORS:
        return None
    index = 1 if name == "ValidationError" else 0
    args = node.exc.args
    if len(args) > index and _literal(args[index]) and not _coded(node.exc):
        return str(name)
    return None


def untranslated(root: Path = SRC, skip: set[str] = NOT_YET) -> Iterator[str]:
    for path in sorted(root.rglob("*.py")):
        if _part(path) in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if name := english_only(node):
                yield f"{path.relative_to(SRC.parent)}:{getattr(node, 'lineno', 0)}: raise {name}(...)"


def test_the_scan_finds_a_literal_message() -> None:
    for source, found in (
        ('raise Conflict("the visit is closed")', True),
        ('raise Conflict(f"visit {n} is closed")', True),
        ('raise NotFound("no patient {c}".format(c=c))', True),
        ('raise ValidationError("x", "must be positive")', True),
        ('raise ValidationError("x", "not a number", code="not_a_number")', False),
        ('raise Conflict(N_("the visit is closed"))', False),
        ('raise refusal(Conflict, "visit_closed", N_("visit {n} is closed"), n=n)', False),
        ("raise Conflict(message)", False),
    ):
        assert (english_only(ast.parse(source).body[0]) is not None) is found, source


def test_every_refusal_outside_the_listed_parts_is_coded_or_marked() -> None:
    found = list(untranslated())
    assert not found, "errors with an English-only message:\n" + "\n".join(found)


def test_the_not_yet_list_names_only_parts_that_exist_and_still_need_it() -> None:
    for part in sorted(NOT_YET):
        assert (SRC / part).exists(), part
        assert list(untranslated(skip=set(NOT_YET) - {part})), (
            f"{part} has no English-only refusal left: remove it from NOT_YET"
        )
