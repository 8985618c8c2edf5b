"""``reluth randomize`` and ``reluth randomization setup|generate-list|list|report``."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from pathlib import Path

import typer
from rich.table import Table

from reluth.cli_support import cli_context, console, handle_errors, print_json
from reluth.units import to_decimal

app = typer.Typer(help="Randomization set-up, allocation list and report.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable output.")


@handle_errors
def randomize_cmd(
    patient_id: str = typer.Argument(..., help="Pseudonymous patient ID, C07-0012."),
    request_id: str | None = typer.Option(
        None,
        "--request-id",
        help="Idempotency key: a retry with the same ID returns the same allocation.",
    ),
    as_json: bool = JSON,
) -> None:
    """Randomize a patient (refused, with the reason, if a protocol precondition fails)."""
    from reluth.randomization import service

    request = request_id or str(uuid.uuid4())
    with cli_context(write=True) as ctx:
        result = service.randomize(ctx, patient_id, request)
    if as_json:
        print_json(result)
        return
    again = " (same request: previous result)" if result.replayed else ""
    console.print(
        f"patient {result.patient_id} randomized to [bold]{result.arm}[/]{again}\n"
        f"stratum {result.stratum}, "
        f"{result.randomized_at.isoformat()}, request {result.request_id}"
    )


@app.command("setup")
@handle_errors
def setup_cmd(
    method: str = typer.Option("blocks", "--method", help="blocks or minimization."),
    by_centre: bool = typer.Option(False, "--by-centre", help="Also stratify/minimize by centre."),
    block_sizes: str = typer.Option("2,4", "--block-sizes", help="Permuted block sizes."),
    p: str = typer.Option("0.8", "--p", help="Minimization: probability of the best arm."),
    reason: str | None = typer.Option(None, "--reason", help="Why an earlier set-up changes."),
) -> None:
    """Fix the trial's randomization method (cannot change after the first randomization)."""
    from reluth.randomization import service

    prob = to_decimal(p, "p")
    sizes = service.parse_block_sizes(block_sizes)
    with cli_context(write=True, reason=reason) as ctx:
        s = service.configure(ctx, method, by_centre, sizes, prob)
        console.print(
            f"randomization: {s.method}"
            + (" by centre" if s.stratify_by_centre else "")
            + (f", blocks {s.block_sizes}" if s.method == "blocks" else f", p = {s.minimization_p}")
        )


def _read_seed(seed_file: Path) -> str:
    if not seed_file.exists():
        seed_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(seed_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        console.print(
            f"new secret seed written to {seed_file} (mode 600): keep it off the trial server;"
            " it regenerates the list"
        )
    return seed_file.read_text(encoding="utf-8").strip()


@app.command("generate-list")
@handle_errors
def generate_list_cmd(
    seed_file: Path = typer.Option(
        ..., "--seed-file", help="Secret seed file (created with a random seed if missing)."
    ),
    per_stratum: int = typer.Option(160, "--per-stratum", help="Slots per stratum (whole blocks)."),
) -> None:
    """Generate the concealed permuted-block list (unblinded statistician only)."""
    from reluth.randomization import service

    seed = _read_seed(seed_file)
    with cli_context(write=True) as ctx:
        alloc = service.generate_list(ctx, seed, per_stratum)
        console.print(
            f"allocation list {alloc.id} generated: >= {per_stratum} slots per stratum, "
            f"blocks {alloc.block_sizes}, content SHA-256 {alloc.content_sha256[:16]}…"
        )


@app.command("list")
@handle_errors
def list_cmd(as_json: bool = JSON) -> None:
    """Print the allocation list, used and upcoming (unblinded statistician only)."""
    from reluth.randomization import service

    with cli_context() as ctx:
        rows = service.allocation_list(ctx)
    if as_json:
        print_json(rows)
        return
    table = Table(title="allocation list (CONFIDENTIAL)")
    for col in ("stratum", "#", "block", "size", "arm", "patient"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["stratum"],
            str(r["position"]),
            str(r["block"]),
            str(r["block_size"]),
            r["arm"],
            r["patient_id"] or "",
        )
    console.print(table)


@app.command("report")
@handle_errors
def report_cmd(as_json: bool = JSON) -> None:
    """Counts by arm overall, per stratum, per centre and per factor level, with imbalance."""
    from reluth.randomization import service

    with cli_context() as ctx:
        rep = service.report(ctx)
    if as_json:
        print_json(rep)
        return
    console.print(
        f"method {rep.method or 'not set up'}; {rep.total} randomized: "
        + ", ".join(f"{a} {n}" for a, n in rep.by_arm.items())
    )
    arms = list(rep.by_arm)
    for title, rows in rep.tables().items():
        table = Table(title=f"per {title}")
        table.add_column("group")
        for a in arms:
            table.add_column(a, justify="right")
        table.add_column("imbalance", justify="right")
        for group, counts, imbalance in rows:
            table.add_row(group, *[str(n) for n in counts], str(imbalance))
        console.print(table)
    console.print(
        "max imbalance: "
        + ", ".join(f"{k} {v}" for k, v in rep.max_imbalance.items())
        + ("" if rep.list_intact else "  [bold red]ALLOCATION LIST ALTERED[/]")
    )


@app.command("backup")
@handle_errors
def backup_cmd(
    patient_id: str = typer.Argument(..., help="Pseudonymous patient ID, C07-0012."),
    arm: str = typer.Option(..., help="The arm the envelope or backup list gave."),
    performed_at: str = typer.Option(
        ..., "--at", help="When it was performed, ISO 8601 with offset: 2025-03-04T14:20+01:00"
    ),
    reason: str = typer.Option(..., help="Why the backup procedure was used."),
    reference: str = typer.Option(..., help="Envelope number or backup-list reference."),
    as_json: bool = JSON,
) -> None:
    """Record a randomization performed by the backup procedure (statistician only); it
    consumes the same list slot an online randomization would have."""
    from reluth.errors import ValidationError
    from reluth.randomization import service

    try:
        moment = dt.datetime.fromisoformat(performed_at)
    except ValueError:
        raise ValidationError(
            "--at",
            f"{performed_at!r}",
            "ISO 8601 with offset, 2025-03-04T14:20+01:00",
            code="not_a_moment",
            params={"value": performed_at},
        ) from None
    with cli_context(write=True, reason=f"backup randomization {reference}") as ctx:
        result = service.record_backup_randomization(
            ctx, patient_id, arm, moment, reason, reference
        )
    if as_json:
        print_json(result)
        return
    console.print(
        f"backup randomization of {result.patient_id} recorded: [bold]{result.arm}[/] at "
        f"{result.randomized_at.isoformat()} ({result.request_id})"
    )


def register(root: typer.Typer) -> None:
    root.command("randomize")(randomize_cmd)
    root.add_typer(app, name="randomization")
