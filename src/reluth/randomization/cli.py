"""``reluth randomize`` and ``reluth randomization setup|generate-list|list|report``."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from pathlib import Path

import typer

from reluth.cli_support import cli_context, console, handle_errors, print_json, table
from reluth.units import to_decimal

app = typer.Typer(help="Randomization set-up, allocation list and report.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _method(code: str) -> str:
    """A randomization method's name in the reader's language."""
    from reluth.i18n import N_, gettext

    names = {"blocks": N_("permuted blocks"), "minimization": N_("minimization")}
    return gettext(names.get(code, code))


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
    from reluth.i18n import format_moment, gettext

    again = gettext(" (same request: previous result)") if result.replayed else ""
    console.print(
        gettext(
            "patient {patient} randomized to [bold]{arm}[/]{again}\n"
            "stratum {stratum}, {moment}, request {request}"
        ).format(
            patient=result.patient_id,
            arm=result.arm,
            again=again,
            stratum=result.stratum,
            moment=format_moment(result.randomized_at, "UTC"),
            request=result.request_id,
        )
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
    from reluth.i18n import format_number, gettext

    shown = (
        gettext("randomization: {method}, blocks {sizes}").format(
            method=_method(s.method), sizes=", ".join(map(format_number, s.block_sizes))
        )
        if s.method == "blocks"
        else gettext("randomization: {method}, p = {p}").format(
            method=_method(s.method), p=format_number(s.minimization_p)
        )
    )
    if s.stratify_by_centre:
        shown += gettext(" (also by centre)")
    console.print(shown)


def _read_seed(seed_file: Path) -> str:
    if not seed_file.exists():
        seed_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(seed_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
        from reluth.i18n import gettext

        console.print(
            gettext(
                "new secret seed written to {path} (mode 600): keep it off the trial server;"
                " it regenerates the list"
            ).format(path=seed_file)
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
    from reluth.i18n import format_number, gettext

    console.print(
        gettext(
            "allocation list {id} generated: >= {n} slots per stratum, blocks {sizes}, "
            "content SHA-256 {sha}…"
        ).format(
            id=alloc.id,
            n=format_number(per_stratum),
            sizes=alloc.block_sizes,
            sha=alloc.content_sha256[:16],
        )
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
    from reluth.i18n import N_

    shown = table(
        N_("stratum"), "#", N_("block"), N_("size"), N_("arm"), N_("patient"),
        title=N_("allocation list (CONFIDENTIAL)"),
    )  # fmt: skip
    for r in rows:
        shown.add_row(
            r["stratum"],
            str(r["position"]),
            str(r["block"]),
            str(r["block_size"]),
            r["arm"],
            r["patient_id"] or "",
        )
    console.print(shown)


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
    from reluth.i18n import N_, format_number, gettext

    titles = {
        "stratum": N_("per stratum"),
        "centre": N_("per centre"),
        "factor level": N_("per factor level"),
    }
    groups = {
        "overall": N_("overall"),
        "stratum": N_("stratum"),
        "centre": N_("centre"),
        "factor_level": N_("factor level"),
    }
    console.print(
        gettext("method {method}; randomized {total}: {by_arm}").format(
            method=_method(rep.method) if rep.method else gettext("not set up"),
            total=format_number(rep.total),
            by_arm=", ".join(f"{a} {format_number(n)}" for a, n in rep.by_arm.items()),
        )
    )
    arms = list(rep.by_arm)
    for title, rows in rep.tables().items():
        shown = table(N_("group"), title=titles.get(title, title))
        for a in arms:
            shown.add_column(a, justify="right")
        shown.add_column(gettext("imbalance"), justify="right")
        for group, counts, imbalance in rows:
            shown.add_row(group, *[format_number(n) for n in counts], format_number(imbalance))
        console.print(shown)
    worst = ", ".join(
        f"{gettext(groups.get(k, k))} {format_number(v)}" for k, v in rep.max_imbalance.items()
    )
    altered = "" if rep.list_intact else "  [bold red]" + gettext("ALLOCATION LIST ALTERED") + "[/]"
    console.print(gettext("max imbalance: {worst}").format(worst=worst) + altered)


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
    from reluth.i18n import format_moment, gettext

    console.print(
        gettext(
            "backup randomization of {patient} recorded: [bold]{arm}[/] at {moment} ({request})"
        ).format(
            patient=result.patient_id,
            arm=result.arm,
            moment=format_moment(result.randomized_at, "UTC"),
            request=result.request_id,
        )
    )


def register(root: typer.Typer) -> None:
    root.command("randomize")(randomize_cmd)
    root.add_typer(app, name="randomization")
