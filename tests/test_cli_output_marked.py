"""Issue 18: no command prints words for people that gettext cannot translate. The CLI modules
are read with :mod:`ast`: a string literal (a string, an f-string's own text, ``"...".format``,
``"..." + x``) given directly to ``console.print``/``typer.echo``, to a table's headers and
title (``cli_support.table``, ``Table``, ``add_column``) or to a progress label (``add_task``,
``update(description=...)``, ``TextColumn``) must be marked (``gettext(...)``, ``N_(...)``)
unless it holds no word (Rich markup, placeholders, punctuation: ``f"[red]{x}[/]"``). A
``gettext("...")`` written inside an f-string is refused too: Babel does not extract it, so it
would stay English in every language."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "reluth"
MARKERS = {"N_", "gettext", "_", "ngettext", "pgettext"}
#: Rich markup (``[bold red]``, ``[/]``) and format placeholders carry no word.
MARKUP = re.compile(r"\[/?[a-z0-9 ._#-]*\]|\{[^{}]*\}")


def cli_modules() -> list[Path]:
    """Every module that prints for people: the commands (``cli.py``, ``*_cli.py``, the demo),
    their shared support and the root command."""
    found = {*SRC.rglob("cli.py"), *SRC.rglob("*_cli.py"), SRC / "cli_support.py", SRC / "demo.py"}
    return sorted(found)


def _wordy(text: str) -> bool:
    return re.search(r"[A-Za-z]{2,}", MARKUP.sub("", text)) is not None


def unmarked(node: ast.expr) -> bool:
    """A literal with words, shown as written (not through gettext)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _wordy(node.value)
    if isinstance(node, ast.JoinedStr):
        return any(
            isinstance(v, ast.Constant) and isinstance(v.value, str) and _wordy(v.value)
            for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return unmarked(node.left) or unmarked(node.right)
    if isinstance(node, ast.IfExp):
        return unmarked(node.body) or unmarked(node.orelse)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and unmarked(node.func.value)
    )


def _name(call: ast.Call) -> tuple[str, str]:
    func = call.func
    if isinstance(func, ast.Attribute):
        return ast.unparse(func.value), func.attr
    return "", getattr(func, "id", "")


def shown_texts(call: ast.Call) -> list[ast.expr]:
    """The arguments of ``call`` that people read, if it is an output call."""
    owner, name = _name(call)
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    if name == "print" and owner.endswith("console"):
        return call.args[:1]
    if name in {"echo", "secho"} and owner in {"typer", ""}:
        return call.args[:1]
    if name in {"table", "cli_table", "Table"}:
        return [*call.args, *(keywords[k] for k in ("title", "caption") if k in keywords)]
    if name in {"add_column", "add_task", "TextColumn"}:
        return [*call.args[:1], *([keywords["description"]] if "description" in keywords else [])]
    if name == "update" and "description" in keywords:
        return [keywords["description"]]
    return []


def gettext_in_fstring(node: ast.JoinedStr) -> Iterator[ast.Call]:
    for inner in ast.walk(node):
        if (
            isinstance(inner, ast.Call)
            and getattr(inner.func, "id", None) in MARKERS
            and inner.args
            and isinstance(inner.args[0], ast.Constant)
        ):
            yield inner


def findings(source: str, where: str = "<source>") -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for arg in shown_texts(node):
                if unmarked(arg):
                    yield f"{where}:{node.lineno}: unmarked {ast.unparse(arg)[:80]}"
        if isinstance(node, ast.JoinedStr):
            for call in gettext_in_fstring(node):
                yield f"{where}:{call.lineno}: {ast.unparse(call)} inside an f-string"


def test_the_scan_finds_unmarked_output_and_allows_markup() -> None:
    for source, found in (
        ('console.print("logged out")', True),
        ('console.print(f"centre {c} added")', True),
        ('err_console.print("no overdue forms")', True),
        ('typer.echo("done")', True),
        ('console.print("sent {n}".format(n=n))', True),
        ('console.print("max: " + ", ".join(x))', True),
        ('console.print("a" if ok else "no finding")', True),
        ('table(N_("id"), "file", title=N_("Findings"))', True),
        ('table(N_("id"), title=f"history of {record}")', True),
        ('t.add_column("imbalance", justify="right")', True),
        ('progress.add_task("verifying", total=3)', True),
        ('bar.update(task, description="writing files")', True),
        ('TextColumn("{task.completed} rows")', True),
        ("console.print(f\"[red]{gettext('refused')}[/] {path}\")", True),
        ('console.print(gettext("logged out"))', False),
        ('console.print(gettext("sent {n}").format(n=n))', False),
        ('console.print(f"[red]{refused}[/] {path}: {why}")', False),
        ('console.print(f"  {form}: {n}")', False),
        ('table(N_("id"), "#", title=N_("Findings"))', False),
        ('t.add_column(gettext("imbalance"))', False),
        ('progress.add_task(gettext("verifying"), total=3)', False),
        ('TextColumn("{task.description}")', False),
        ("console.print(shown)", False),
    ):
        assert bool(list(findings(source))) is found, source


def test_the_cli_modules_print_only_marked_words() -> None:
    found = [
        line
        for path in cli_modules()
        for line in findings(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))
    ]
    assert not found, "CLI output not marked for translation:\n" + "\n".join(found)


def test_the_scan_reads_every_command_module() -> None:
    names = {str(p.relative_to(SRC)) for p in cli_modules()}
    for expected in ("cli.py", "cli_support.py", "protocol/cli.py", "imaging/cli.py",
                     "odm/cli.py", "patients/casebook_cli.py", "randomization/cli.py", "demo.py"):  # fmt: skip
        assert expected in names, expected
