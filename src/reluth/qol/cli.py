"""Command: ``reluth qol score RESPONSES.json`` (table, or JSON with ``--json``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from reluth.cli_support import console, handle_errors, load_json, print_json
from reluth.cli_support import table as cli_table
from reluth.i18n import N_, format_number, gettext
from reluth.qol.scoring import QolScore, change_from_baseline, instrument, parse_items, score

app = typer.Typer(help="EORTC QLQ-C30 and QLQ-GI.NET21 scoring.", no_args_is_help=True)


def _score_json(result: QolScore) -> dict[str, Any]:
    return {
        "instrument": result.instrument,
        "scales": result.scales,
        "summary": result.summary,
        "answered": result.answered,
        "unverified_scales": list(result.unverified_scales),
    }


@app.command("score")
@handle_errors
def score_command(
    responses: Path = typer.Argument(..., help='{"instrument": ..., "items": {"1": 2, ...}}'),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    threshold: str = typer.Option("10", help="Points of change that count as deterioration."),
) -> None:
    """Scale scores (0-100), the C30 summary score, and change from `baseline_items` if given."""
    from reluth.i18n.reasons import invalid

    data = load_json(responses, "responses file")
    if not isinstance(data, Mapping):
        raise invalid(
            "input",
            "not_an_object",
            N_("expected an object"),
            ('{"instrument": ..., "items": {...}}',),
        )
    name = data.get("instrument")
    if not isinstance(name, str):
        raise invalid(
            "instrument",
            "required",
            N_("missing or not text: {value}"),
            ("QLQ-C30", "QLQ-GINET21"),
            value=repr(name),
        )
    if "items" not in data:
        raise invalid("items", "required", N_("missing"), ('{"1": 2, "2": 1, ...}',))
    inst = instrument(name)
    result = score(inst, data["items"])
    output = _score_json(result)
    changes = None
    if data.get("baseline_items") is not None:
        try:
            limit = Decimal(threshold)
        except ArithmeticError:
            raise invalid(
                "--threshold",
                "not_a_number",
                N_("not a number: {value}"),
                N_("e.g. {example}"),
                value=repr(threshold),
                example=10,
            ) from None
        parse_items(inst, data["baseline_items"], "baseline_items")  # errors name the baseline
        base = score(inst, data["baseline_items"])
        changes = change_from_baseline(base, result, limit)
        output["baseline"] = _score_json(base)
        output["change_from_baseline"] = changes
        output["deterioration_threshold"] = limit
    if as_json:
        print_json(output)
        return
    columns = [N_("scale"), N_("name"), N_("type"), N_("score"), N_("items answered")]
    if changes is not None:
        columns += [N_("change"), N_("deteriorated")]
    table = cli_table(*columns, title=f"{inst.name} v{inst.version}")
    for code, scale in inst.scales.items():
        value = result.scales[code]
        row = [
            code + ("" if scale.verified else " *"),
            scale.name,
            scale.type.value,
            "-" if value is None else format_number(value),
            f"{result.answered[code]}/{len(scale.items)}",
        ]
        if changes is not None:
            c = changes[code]
            row += ["-" if c.change is None else format_number(c.change), _flag(c.deteriorated)]
        table.add_row(*row)
    console.print(table)
    if inst.summary is not None:
        shown = (
            gettext("not computed (a component is missing)")
            if result.summary is None
            else format_number(result.summary)
        )
        console.print(f"{inst.summary.name}: {shown}")
    if result.unverified_scales:
        note = gettext("* item-to-scale map not verified against the EORTC instructions")
        console.print(f"[yellow]{note}[/]")


def _flag(value: bool | None) -> str:
    if value is None:
        return "-"
    yes = gettext("yes")  # outside the f-string: Babel extracts it
    return f"[red]{yes}[/]" if value else gettext("no")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="qol")
