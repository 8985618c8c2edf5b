"""Commands of data queries: ``reluth queries list`` and ``reluth queries answer QUERY_ID``,
in words (``--answer``) or by correcting the queried value (``--correct VALUE --reason TEXT``,
through the form's correction path, as the record page and ``POST /api/v1/queries/{id}/answer``
do)."""

from __future__ import annotations

import typer

from reluth.cli_support import cli_context, console, handle_errors, print_json, table

app = typer.Typer(
    help="Data queries: list them, answer in words or by correcting the value.",
    no_args_is_help=True,
)


def _out(row: object) -> dict[str, object]:
    from reluth.values import to_jsonable

    keys = ("id", "field", "status", "question", "opened_by", "answer", "answered_by")
    return {k: to_jsonable(getattr(row, k)) for k in keys}


@app.command("list")
@handle_errors
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The queries on patients of your centres, open ones first."""
    from reluth.records import views

    with cli_context() as ctx:
        rows = views.data_queries(ctx)
    if as_json:
        print_json([{**_out(r), "patient": r.patient_code, "days_open": r.days_open} for r in rows])
        return
    from reluth.i18n import N_
    from reluth.i18n.vocabulary import label

    shown = table(
        N_("id"), N_("patient"), N_("field"), N_("status"), N_("days"), N_("question"),
        title=N_("Data queries"),
    )  # fmt: skip
    for r in rows:
        shown.add_row(
            str(r.id),
            r.patient_code,
            r.field,
            label("query_status", r.status),
            str(r.days_open),
            r.question,
        )
    console.print(shown)


@app.command("answer")
@handle_errors
def answer_command(
    query_id: int = typer.Argument(..., help="The query's id (reluth queries list)."),
    answer: str | None = typer.Option(None, "--answer", help="The answer in words."),
    correct: str | None = typer.Option(
        None, "--correct", help="Correct the queried value to this (needs --reason)."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why the value changes (audited)."),
    as_json: bool = typer.Option(False, "--json", help="Print the answered query as JSON."),
) -> None:
    """Answer a query in words, or by correcting the value it is about through its form's
    correction path (the audit trail keeps old value, new value, who and why)."""
    from reluth.errors import ValidationError
    from reluth.forms import answers
    from reluth.queries import service as queries

    if correct is not None:
        with cli_context(write=True) as ctx:
            row = answers.answer_with_correction(ctx, query_id, correct, reason or "", answer)
            out = _out(row)
    else:
        if answer is None:
            from reluth.i18n import N_

            raise ValidationError(
                "answer", N_("missing"), N_("--answer TEXT, or --correct and --reason")
            )
        with cli_context(write=True, reason=queries.answer_reason(query_id)) as ctx:
            out = _out(queries.answer_query(ctx, query_id, answer))
    if as_json:
        print_json(out)
        return
    from reluth.i18n import gettext
    from reluth.i18n.vocabulary import label

    console.print(
        gettext("query {id} {status}: {answer}").format(
            id=out["id"], status=label("query_status", out["status"]), answer=out["answer"]
        ),
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="queries")
