"""Issue 18: the command line's output for people (Rich tables, their headers, the engine's
notes and reasons) follows ``LANG``; its ``--json`` output is the same in every language."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reluth.cli import app
from reluth.i18n import set_locale

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECIST = EXAMPLES / "recist" / "assessments.json"
CTCAE = EXAMPLES / "ctcae" / "labs.json"
FRENCH = {"LANG": "fr_FR.UTF-8", "LC_ALL": "", "LANGUAGE": "", "LC_MESSAGES": ""}
ENGLISH = {"LANG": "C.UTF-8", "LC_ALL": "", "LANGUAGE": "", "LC_MESSAGES": ""}
runner = CliRunner()


@pytest.fixture(autouse=True)
def _default_language_after() -> Iterator[None]:
    yield
    set_locale(None)  # the CLI sets the process's language; the next test starts in English


def _run(args: list[str], env: dict[str, str]) -> str:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_recist_table_notes_and_month6_reason_follow_lang() -> None:
    french = _run(["recist", "evaluate", str(RECIST)], FRENCH)
    for expected in (
        "RECIST 1.1 (somme initiale",
        "somme",
        "cible",
        "Meilleure réponse globale : réponse partielle",
        "Première progression : aucune",
        "Contrôle de la maladie à 6 mois (fenêtre du 03/06/2024 au 29/07/2024) : oui",
        "réponse partielle le 01/07/2024",
        "nouvelle lésion équivoque",
    ):
        assert expected in french, expected
    for english in ("Best overall response", "First PD", "Disease control", "equivocal new"):
        assert english not in french, english
    english = _run(["recist", "evaluate", str(RECIST)], ENGLISH)
    assert (
        "Best overall response: partial response (PR)" in english and "PR on 2024-07-01" in english
    )


def test_ctcae_table_headers_follow_lang() -> None:
    french = _run(["ctcae", "grade", str(CTCAE)], FRENCH)
    assert "Grades CTCAE v5.0" in french and "examen" in french and "terme" in french
    assert "Worst" not in french and "baseline grade" not in french
    assert "CTCAE v5.0 grades" in _run(["ctcae", "grade", str(CTCAE)], ENGLISH)


@pytest.mark.parametrize(
    "args",
    [["recist", "evaluate", str(RECIST), "--json"], ["ctcae", "grade", str(CTCAE), "--json"]],
)
def test_json_output_is_the_same_in_every_language(args: list[str]) -> None:
    assert _run(args, FRENCH) == _run(args, ENGLISH)


def test_tables_of_the_trial_database_follow_lang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reluth centres list`, `reluth users list` and `reluth forms list` as the logged-in
    administrator: French headers, yes/no, roles and form labels under a French LANG, the
    same JSON in both languages."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "store"))
    from test_store_cli import bootstrap, run

    monkeypatch.setenv("RELUTH_DATABASE_URL", f"sqlite:///{tmp_path / 'trial.db'}")
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    bootstrap(cli, tmp_path)
    run(cli, "centres", "add", "C07", "CHU Example")
    french = {
        args: cli.invoke(app, list(args), env=FRENCH).stdout
        for args in (("centres", "list"), ("users", "list"), ("forms", "list"))
    }
    assert "nom" in french[("centres", "list")] and "oui" in french[("centres", "list")]
    assert "identifiant" in french[("users", "list")]
    assert "administrateur" in french[("users", "list")]
    assert "Formulaires du cahier" in french[("forms", "list")]
    assert "Enregistrement" in french[("forms", "list")]
    for args in (("centres", "list"), ("users", "list")):
        shown = cli.invoke(app, [*args, "--json"], env=FRENCH).stdout
        assert shown == cli.invoke(app, [*args, "--json"], env=ENGLISH).stdout
    assert "active" in cli.invoke(app, ["centres", "list"], env=ENGLISH).stdout


def test_eligibility_check_reads_in_french_and_its_json_does_not_change() -> None:
    """`reluth eligibility check` (exit 1: not eligible): headers, each criterion's wording from
    the protocol file, its verdict and the status in French; the JSON as in English."""
    patient = str(EXAMPLES / "patients" / "not-eligible-low-platelets.json")
    args = ["eligibility", "check", patient, "--as-of", "2025-06-01"]
    french = runner.invoke(app, args, env=FRENCH)
    assert french.exit_code == 1, french.output
    flat = " ".join(french.stdout.split())
    assert "critère" in flat and "résultat" in flat and "Statut : non éligible" in flat
    assert "Plaquettes" in flat and "étape" in flat
    for english in ("Status:", "Stratum:", "criterion", "does not apply", "randomization stage"):
        assert english not in flat, english
    json_args = [*args, "--json"]
    assert runner.invoke(app, json_args, env=FRENCH).stdout == (
        runner.invoke(app, json_args, env=ENGLISH).stdout
    )


def test_schedule_tables_read_in_french() -> None:
    """`reluth schedule` (the plan, then the visits' status as of a day): visit names, days as
    dd/mm/yyyy and statuses in French; the JSON as in English."""
    plan = ["schedule", "--randomized", "2025-01-06", "--arm", "control"]
    french = " ".join(_run(plan, FRENCH).split())
    assert "Calendrier - bras control" in french and "06/01/2025" in french
    assert "Follow-up" not in french and "Schedule" not in french
    status = " ".join(_run([*plan, "--as-of", "2025-06-01"], FRENCH).split())
    assert "Visites au 01/06/2025" in status and "manquée" in status
    assert "missed" not in status and "Visits as of" not in status
    assert _run([*plan, "--json"], FRENCH) == _run([*plan, "--json"], ENGLISH)
