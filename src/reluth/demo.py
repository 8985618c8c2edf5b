"""``reluth demo``: the main job. Until the synthetic trial lands it screens the example
patients in ``examples/patients`` and prints their eligibility and strata."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from reluth.cli_support import console, handle_errors, load_json
from reluth.errors import ReluthError
from reluth.protocol.definition import load_protocol
from reluth.protocol.eligibility import check_eligibility
from reluth.protocol.patient import parse_patient
from reluth.protocol.strata import derive_strata

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "patients"


def screen_examples(folder: Path) -> Table:
    protocol = load_protocol()
    table = Table(
        "patient",
        "file",
        "status",
        "failed / unknown criteria",
        "stratum",
        title=f"Screening of the example patients ({protocol.label})",
    )
    for path in sorted(folder.glob("*.json")):
        try:
            patient = parse_patient(load_json(path), as_of=dt.date.today())
        except ReluthError as exc:
            table.add_row("?", path.name, "[red]invalid[/]", exc.message, "")
            continue
        result = check_eligibility(patient, protocol)
        issues = [f"{c.id} {c.reason}" for c in result.criteria if c.passes is not True]
        try:
            stratum = derive_strata(patient, protocol).code
        except ReluthError:
            stratum = "-"
        colour = {"eligible": "green", "not_eligible": "red", "incomplete": "yellow"}[result.status]
        table.add_row(
            patient.patient_id,
            path.name,
            f"[{colour}]{result.status}[/]",
            "\n".join(issues),
            stratum,
        )
    return table


@handle_errors
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
    examples: Path = typer.Option(EXAMPLES, "--examples", help="Folder of patient JSON files."),
) -> None:
    """Run the main job (screens the example patients)."""
    console.print(screen_examples(examples))
    out.mkdir(parents=True, exist_ok=True)


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
