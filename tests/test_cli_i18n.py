"""Issue 18: the command line's output for people (Rich tables, their headers, the engine's
notes and reasons) follows ``LANG``; its ``--json`` output is the same in every language."""

from __future__ import annotations

import json
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
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as their words (the console is made at import, before COLUMNS is set:
    under xdist its width is the default 80 and headers wrap)."""
    from reluth.cli_support import console, err_console

    monkeypatch.setattr(console, "width", 250)
    monkeypatch.setattr(err_console, "width", 250)


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


def _fresh_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A new trial database (SQLite) with its first administrator logged in and centre C07."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "store"))
    from test_store_cli import bootstrap, run

    monkeypatch.setenv("RELUTH_DATABASE_URL", f"sqlite:///{tmp_path / 'trial.db'}")
    monkeypatch.setenv("RELUTH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("RELUTH_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    bootstrap(cli, tmp_path)
    run(cli, "centres", "add", "C07", "CHU Example")
    return cli


def test_tables_of_the_trial_database_follow_lang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reluth centres list`, `reluth users list` and `reluth forms list` as the logged-in
    administrator: French headers, yes/no, roles and form labels under a French LANG, the
    same JSON in both languages."""
    cli = _fresh_trial(tmp_path, monkeypatch)
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


# --- protocol, design, statistics, imaging, ODM, randomization, audit (issue 18) -----------


def _flat(text: str) -> str:
    return " ".join(text.split())


def _both(args: list[str], code: int = 0) -> tuple[str, str]:
    """The command's output in French and in English (``code`` its exit code in both)."""
    shown = []
    for env in (FRENCH, ENGLISH):
        result = runner.invoke(app, args, env={**env, "COLUMNS": "200"})
        assert result.exit_code == code, result.output
        shown.append(_flat(result.output))
    return shown[0], shown[1]


def _absent(text: str, words: tuple[str, ...]) -> None:
    for word in words:
        assert word not in text, word


def test_protocol_show_reads_in_french_and_its_json_does_not_change() -> None:
    french, english = _both(["protocol", "show"])
    for expected in (
        "Bras (1:1)",
        "bras",
        "activité (GBq)",
        "intervalle (semaines)",
        "Nombre de sujets nécessaires : 146 randomisés (73 par bras)",
        "risque alpha bilatéral 0,05, puissance 0,80",
        "taux de contrôle de la maladie 0,65 contre 0,85",
        "Seuils d’éligibilité",
        "Critères d’éligibilité",
        "Réserve médullaire suffisante",  # the criterion's wording from the protocol file
        "Calendrier",
        "Hypothèses",
        "promoteur : ",
    ):
        assert expected in french, expected
    _absent(
        french,
        ("Sample size", "Eligibility thresholds", "Eligibility criteria", "interval (weeks)",
         "Assumptions", "sponsor:", "two-sided"),
    )  # fmt: skip
    assert "Sample size: 146 randomized (73 per arm)" in english and "Arms (1:1)" in english
    assert _run(["protocol", "show", "--json"], FRENCH) == _run(
        ["protocol", "show", "--json"], ENGLISH
    )


def test_sample_size_table_reads_in_french() -> None:
    french, english = _both(["stats", "sample-size"])
    assert "Nombre de sujets nécessaires : 0,65 contre 0,85, risque alpha bilatéral 0,05" in french
    assert "n par bras (non arrondi)" in french and "puissance" in french
    _absent(french, ("Sample size", "n per arm", "randomized", "two-sided"))
    assert "Sample size: 0.65 vs 0.85, alpha 0.05 two-sided" in english
    args = ["stats", "sample-size", "--json"]
    assert _run(args, FRENCH) == _run(args, ENGLISH)


def test_design_simulation_reads_in_french_with_french_percentages() -> None:
    args = ["design", "simulate", "--n-sim", "400", "--n-sim-pfs", "100", "--seed", "7"]
    french, english = _both(args)
    for expected in (
        "Critère principal",
        "taux de contrôle de la maladie à 6 mois",
        "risque alpha",
        "puissance (65 % contre 85 %)",
        "intervalle de confiance à 95 %",
        "puissance sur la SSP",
        "Survie sans progression : médiane 15 mois",
        "graine 7",
    ):
        assert expected in french, expected
    _absent(french, ("Primary endpoint", "type I error", "PFS power", "trials (primary)", "seed 7"))
    assert "power (65% vs 85%)" in english and "Primary endpoint" in english
    assert _run([*args, "--json"], FRENCH).replace('"elapsed_s"', "") != ""
    shown = [json.loads(_run([*args, "--json"], env)) for env in (FRENCH, ENGLISH)]
    for out in shown:
        out.pop("elapsed_s", None)  # the run's own time
    assert shown[0] == shown[1]


def test_cohort_summary_reads_in_french(tmp_path: Path) -> None:
    out = {env["LANG"]: tmp_path / env["LANG"] for env in (FRENCH, ENGLISH)}
    french = _flat(
        _run(["design", "cohort", "--out", str(out[FRENCH["LANG"]]), "--n-included", "6"], FRENCH)
    )
    assert "présélectionnés" in french and "inclus 6" in french and "date de gel" in french
    assert "Essayez" in french
    _absent(french, ("screened", "data cut-off", "Try:"))
    args = ["design", "cohort", "--out", str(out[ENGLISH["LANG"]]), "--n-included", "6"]
    assert "included" in _run(args, ENGLISH)
    json_args = ["design", "cohort", "--out", str(tmp_path / "j"), "--n-included", "6", "--json"]
    assert _run(json_args, FRENCH) == _run(json_args, ENGLISH)


def _dicom(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A synthetic SPECT/CT export, the site's key and an output folder (not yet written)."""
    key = tmp_path / "site.key"
    key.write_text("a" * 48)
    raw = tmp_path / "raw"
    _run(
        ["images", "synthesize", str(raw), "--matrix", "16", "--ct-slices", "1", "--ct-size",
         "16", "--timepoints", "24h"],
        ENGLISH,
    )  # fmt: skip
    return raw, key, tmp_path / "out"


def test_imaging_reports_read_in_french(tmp_path: Path) -> None:
    raw, key, out = _dicom(tmp_path)
    deid = ["images", "deidentify", str(raw), "", "--patient-id", "C07-0012", "--key", str(key)]
    shown = {}
    for name, env in (("fr", FRENCH), ("en", ENGLISH)):
        deid[3] = str(out / name)
        shown[name] = _flat(_run(deid, env))
    assert "fichiers écrits : 2, ignorés : 0, collisions : 0" in shown["fr"]
    assert "files written: 2, skipped: 0" in shown["en"] and "écrits" not in shown["en"]
    french, english = _both(["images", "verify-deid", str(raw)], code=1)
    assert "Constats de la pseudonymisation" in french and "fichier" in french
    assert "fichiers vérifiés : 2, constats :" in french
    _absent(french, ("De-identification findings", "files checked", "where", "problem"))
    assert "De-identification findings" in english and "files checked: 2" in english
    french, english = _both(["images", "qc", str(out / "fr")])
    assert "Contrôle qualité des en-têtes" in french and "temps d’acquisition" in french
    _absent(french, ("Header QC", "time point", "reasons"))
    assert "Header QC" in english
    for args in (
        ["images", "qc", str(out / "fr"), "--json"],
        ["images", "verify-deid", str(out / "fr"), "--json"],
    ):
        assert _run(args, FRENCH) == _run(args, ENGLISH)


def test_imaging_and_odm_refusals_read_in_french(tmp_path: Path) -> None:
    """The refusals of ``reluth.imaging`` and ``reluth.odm`` are coded: French with a French
    LANG, the same English as before otherwise."""
    raw, key, _out = _dicom(tmp_path)
    cases = [
        (["images", "qc", str(tmp_path / "none")], "pas un dossier", "not a directory"),
        (["images", "deidentify", str(raw), str(tmp_path / "o"), "--patient-id", "DUPONT",
          "--key", str(key)], "pas un identifiant de patient de l’essai : « DUPONT »",
         "not a trial patient ID: “DUPONT”"),
        (["images", "deidentify", str(raw), str(tmp_path / "o"), "--patient-id", "C07-0012",
          "--key", str(tmp_path / "none.key")], "fichier de clé introuvable",
         "key file not found"),
        (["images", "qc", str(raw), "--planned-timepoints", "soon"],
         "pas un temps d’acquisition : « soon » (accepté : par exemple 4h,24h,96h,168h ou 7d)",
         "not a time point"),
        (["import", "odm", str(tmp_path / "none.xml")], "fichier introuvable (accepté : un "
         "fichier XML ODM)", "file not found (accepted: an ODM XML file)"),
    ]  # fmt: skip
    for args, french, english in cases:
        fr = runner.invoke(app, args, env=FRENCH)
        en = runner.invoke(app, args, env=ENGLISH)
        assert fr.exit_code == en.exit_code == 2, (args, fr.output)
        assert french in _flat(fr.output) and "erreur :" in fr.output, (args, fr.output)
        assert english in _flat(en.output), (args, en.output)
        assert english not in _flat(fr.output)


def test_odm_refusals_of_the_file_are_coded() -> None:
    """The importer's refusals carry a stable code and read in French (no database needed:
    the file is read before anything is written)."""
    from reluth.errors import ValidationError
    from reluth.i18n import use_locale
    from reluth.i18n.messages import describe
    from reluth.odm import importer, mapping

    for content, code, french in (
        (b"<not xml", "not_well_formed_xml", "XML mal formé"),
        (b"<root/>", "not_odm", "élément racine « root »"),
        (b"<!DOCTYPE x><x/>", "xml_declarations", "une déclaration DOCTYPE ou d’entité"),
    ):
        with pytest.raises(ValidationError) as caught:
            importer.parse(content)
        assert caught.value.code == code
        with use_locale("fr"):
            assert french in describe(caught.value)
    with pytest.raises(ValidationError) as caught:
        mapping.load(b"unknown_section: {}")
    assert caught.value.code == "unknown_map_section"
    with use_locale("fr"):
        assert "inconnu" in describe(caught.value)


@pytest.fixture
def trial_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A trial database with its first administrator logged in, a centre C07 and its staff
    (storekit: nurse1, inv1, stat1), and the randomization set up by blocks."""
    cli = _fresh_trial(tmp_path, monkeypatch)  # tests/store importable from here on
    from storekit import add_users
    from test_store_cli import run

    from reluth.db.engine import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'trial.db'}")
    add_users(engine, ("C07",))
    engine.dispose()
    run(cli, "randomization", "setup", "--method", "blocks")
    yield cli


def _as(cli: CliRunner, username: str) -> None:
    from test_store_cli import login

    login(cli, username)


def _db_both(cli: CliRunner, *args: str, code: int = 0) -> tuple[str, str]:
    shown = []
    for env in (FRENCH, ENGLISH):
        result = cli.invoke(app, list(args), env={**env, "COLUMNS": "200"})
        assert result.exit_code == code, (args, result.output)
        shown.append(_flat(result.output))
    return shown[0], shown[1]


def _same_json(cli: CliRunner, *args: str) -> None:
    french = cli.invoke(app, [*args, "--json"], env=FRENCH)
    assert french.exit_code == 0, french.output
    assert french.stdout == cli.invoke(app, [*args, "--json"], env=ENGLISH).stdout


def test_randomization_list_and_balance_report_read_in_french(trial_db: CliRunner) -> None:
    cli = trial_db
    _as(cli, "stat1")
    generated = cli.invoke(
        app,
        ["randomization", "generate-list", "--seed-file", "seed.txt", "--per-stratum", "4"],
        env={**FRENCH, "COLUMNS": "200"},
    )  # once per trial
    assert generated.exit_code == 0, generated.output
    french = _flat(generated.output)
    assert "liste de randomisation 1 générée : au moins 4 places par strate" in french
    assert "nouvelle graine secrète écrite dans" in french
    _absent(french, ("generated", "slots per stratum", "secret seed"))
    french, english = _db_both(cli, "randomization", "list")
    assert "liste de randomisation (CONFIDENTIEL)" in french
    for word in ("strate", "bloc", "taille", "bras"):
        assert word in french, word
    _absent(french, ("allocation list", "CONFIDENTIAL", "block", "size"))
    assert "allocation list (CONFIDENTIAL)" in english
    french, english = _db_both(cli, "randomization", "report")
    for expected in ("méthode blocs permutés", "randomisés 0", "déséquilibre maximal",
                     "global 0", "par strate", "par centre", "par modalité de facteur"):  # fmt: skip
        assert expected in french, expected
    _absent(french, ("method", "max imbalance", "per stratum", "per centre", "overall"))
    assert "method permuted blocks; randomized 0" in english and "max imbalance" in english
    _same_json(cli, "randomization", "report")
    _same_json(cli, "randomization", "list")


def test_audit_and_database_commands_read_in_french(trial_db: CliRunner) -> None:
    cli = trial_db
    french, english = _db_both(cli, "audit", "verify")
    assert "piste d’audit vérifiée" in french and "aucun constat" in french
    assert "vérifié :" in french
    _absent(french, ("audit trail verified", "no finding", "checked:"))
    assert "audit trail verified" in english
    _as(cli, "nurse1")
    cli.invoke(app, ["patients", "register", "--centre", "C07"], env=ENGLISH)
    _as(cli, "inv1")  # an investigator reads the trail by patient
    french, english = _db_both(cli, "audit", "show", "C07-0001")
    assert "historique de C07-0001" in french and "utilisateur (rôle)" in french
    assert "nurse1 (infirmier(ère) de recherche clinique)" in french and "créé" in french
    _absent(french, ("history of", "user (role)", "created", "research nurse"))
    assert "history of C07-0001" in english and "nurse1 (research nurse)" in english
    _same_json(cli, "audit", "show", "C07-0001")
    _as(cli, "admin1")
    french, english = _db_both(cli, "db", "init")
    assert "déjà à la révision" in french and "already at revision" in english
    french, english = _db_both(cli, "db", "status")
    assert "révision de la base" in french and "le code attend" in french
    assert "database revision" in english
    french, _english = _db_both(cli, "audit", "checkpoint")
    assert "point de contrôle écrit dans" in french


def test_odm_export_and_import_report_read_in_french(trial_db: CliRunner, tmp_path: Path) -> None:
    from storekit import INVESTIGATOR, add_users, cli_token

    from reluth.db.engine import make_engine
    from reluth.db.migrate import upgrade

    cli = trial_db
    _as(cli, "nurse1")
    cli.invoke(app, ["patients", "register", "--centre", "C07"], env=ENGLISH)
    _as(cli, "stat1")
    out = tmp_path / "trial.xml"
    french, english = _db_both(cli, "export", "odm", "--out", str(out))
    assert f"{out} écrit : 1 patient(s), 1 formulaire(s)" in french
    assert "enregistrement(s) d’audit" in french
    _absent(french, ("wrote", "audit records", "form instances"))
    assert f"wrote {out}: 1 patients" in english
    target = f"sqlite:///{tmp_path / 'target.db'}"
    engine = make_engine(target)
    upgrade(engine)
    add_users(engine, ("C07",))
    token = cli_token(engine, INVESTIGATOR)
    engine.dispose()
    args = ["import", "odm", str(out), "--dry-run"]
    env = {"RELUTH_DATABASE_URL": target, "RELUTH_TOKEN": token, "COLUMNS": "200"}
    french = _flat(cli.invoke(app, args, env={**FRENCH, **env}).output)
    english = _flat(cli.invoke(app, args, env={**ENGLISH, **env}).output)
    assert "importerait depuis" in french and "patients 1" in french
    _absent(french, ("would import", "form instances"))
    assert "would import 1 form instances of 1 patients" in english
    first = cli.invoke(app, [*args, "--json"], env={**FRENCH, **env})
    assert first.exit_code == 0, first.output
    assert first.stdout == cli.invoke(app, [*args, "--json"], env={**ENGLISH, **env}).stdout


def test_a_coded_input_refusal_keeps_its_english_and_reads_in_french() -> None:
    """``reluth.i18n.reasons.invalid``: the field, problem and accepted values of the error as
    the English source writes them (``message``, logs, ``--json``), the whole in French where
    it is described; the accepted values may carry values of their own."""
    from reluth.i18n import N_, use_locale
    from reluth.i18n.messages import describe
    from reluth.i18n.reasons import Reason, invalid

    error = invalid(
        "--key", "key_too_short", N_("key file holds {n} bytes"), N_("an existing file"), n=12
    )
    assert (error.field, error.problem, error.accepted) == (
        "--key",
        "key file holds 12 bytes",
        "an existing file",
    )
    assert error.message == "--key: key file holds 12 bytes (accepted: an existing file)"
    assert error.code == "key_too_short" and describe(error) == error.message
    with use_locale("fr"):
        assert describe(error) == (
            "--key : le fichier de clé contient 12 octets (accepté : un fichier existant)"
        )
    limit = Reason("at_most_bytes", N_("at most {limit} bytes"), {"limit": 20_000_000})
    big = invalid("file", "file_too_large", N_("{size} bytes"), limit, size=30_000_000)
    assert big.accepted == "at most 20000000 bytes"
    with use_locale("fr"):
        shown = describe(big).replace("\u202f", " ")  # Babel groups by a narrow no-break space
        assert "30 000 000 octets (accepté : au plus 20 000 000 octets)" in shown
