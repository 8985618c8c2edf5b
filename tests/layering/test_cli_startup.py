"""Start-up of the ``reluth`` command (issue 20): ``reluth --help`` imports no domain, and
``reluth NAME --help`` imports only NAME's command module, never a heavy library or the
database, protocol or auth services. A test of what is imported, not of time (the times are in
benchmarks/README.md, measured by benchmarks/bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from typer.testing import CliRunner

from reluth import cli

#: Never loaded by ``import reluth.cli`` nor by any ``--help``.
HEAVY = (
    "pandas",
    "numpy",
    "scipy",
    "matplotlib",
    "dask",
    "pydicom",
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "weasyprint",
    "jinja2",
    "cryptography",
)
#: Services and stores: their modules are imported by the commands that use them.
SERVICES = (
    "reluth.db",
    "reluth.core.context",
    "reluth.core.trial",
    "reluth.auth.service",
    "reluth.auth.policy",
    "reluth.patients.service",
    "reluth.randomization.service",
    "reluth.protocol.definition",
    "reluth.analysis.service",
    "reluth.imaging.store",
)


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_import_and_root_help_load_no_domain_module() -> None:
    out = _run(
        """
        import json, sys
        import reluth.cli
        after_import = sorted(sys.modules)
        from typer.testing import CliRunner
        result = CliRunner().invoke(reluth.cli.app, ["--help"])
        print(json.dumps({
            "exit": result.exit_code,
            "listed": all(name in result.output for name in reluth.cli.COMMANDS),
            "after_import": after_import,
            "after_help": sorted(sys.modules),
        }))
        """
    )
    assert out["exit"] == 0
    assert out["listed"] is True
    for phase in ("after_import", "after_help"):
        loaded = set(out[phase])  # type: ignore[call-overload]
        assert not loaded & set(HEAVY), (phase, sorted(loaded & set(HEAVY)))
        assert "pydantic" not in loaded, phase
        # the root help is click's plain formatter: Rich's renderer (markdown_it, pygments)
        # was two thirds of `reluth --help` (benchmarks/README.md, command start-up)
        assert not {m for m in loaded if m == "rich" or m.startswith("rich.")}, phase
        reluth_modules = {m for m in loaded if m == "reluth" or m.startswith("reluth.")}
        assert reluth_modules == {"reluth", "reluth.cli"}, (phase, sorted(reluth_modules))


def test_each_command_help_imports_only_its_module() -> None:
    out = _run(
        f"""
        import json, sys
        import reluth.cli
        from typer.testing import CliRunner
        denied = {HEAVY + SERVICES!r}
        runner = CliRunner()
        report = {{}}
        for name, (module, _) in reluth.cli.COMMANDS.items():
            result = runner.invoke(reluth.cli.app, [name, "--help"])
            loaded = [m for m in denied if m in sys.modules]
            report[name] = {{
                "exit": result.exit_code,
                "module_loaded": module in sys.modules,
                "denied": loaded,
            }}
            if loaded:
                break  # the first command that loads one is the one to fix
        print(json.dumps(report))
        """
    )
    failing = {name: r for name, r in out.items() if r["denied"]}  # type: ignore[index]
    assert failing == {}, failing
    assert len(out) == len(cli.COMMANDS)
    for name, r in out.items():
        assert r == {"exit": 0, "module_loaded": True, "denied": []}, name


def test_the_command_table_matches_what_the_modules_register() -> None:
    registered: dict[str, tuple[str, str]] = {}
    for module in cli.domain_modules():
        for name, command in cli.load_module_commands(module).items():
            text = (command.short_help or command.help or "").split("\n\n")[0]
            registered[name] = (module, " ".join(text.split()))
    assert registered == cli.COMMANDS


def test_the_lazy_root_runs_commands_and_suggests_names() -> None:
    runner = CliRunner()
    result = runner.invoke(cli.app, ["eligibility", "schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["type"] == "object"
    typo = runner.invoke(cli.app, ["eligibilty", "check"])
    assert typo.exit_code == 2
    assert "Did you mean 'eligibility'" in typo.output
    assert runner.invoke(cli.app, ["--version"]).output.strip() == cli.__version__


def test_help_texts_copied_for_start_up_match_the_service() -> None:
    from reluth.patients import cli as patients_cli
    from reluth.patients import service

    assert ", ".join(service.DEATH_CAUSES) == patients_cli.DEATH_CAUSES_HELP
    assert ", ".join(service.END_REASONS) == patients_cli.END_REASONS_HELP
