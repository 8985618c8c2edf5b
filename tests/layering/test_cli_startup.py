"""Start-up of the ``reluth`` command (issue 20): ``reluth --help`` imports no domain, and
``reluth NAME --help`` imports only NAME's command module, never a heavy library or the
database, protocol or auth services. A test of what is imported, not of time (the times are in
benchmarks/README.md, measured by benchmarks/bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
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


#: Never loaded by ``reluth eligibility check FILE`` in English (besides HEAVY): what it does
#: not use (the database, the forms registry, Typer's pydantic adapters, Babel's locale data
#: for English numbers, the installed distributions' metadata for pydantic plugins).
CHECK_DENIED = (
    *HEAVY,
    "reluth.db",
    "reluth.auth.service",
    "reluth.forms.registry",
    "typer._adapters",
    "babel",
    "babel.numbers",
    "importlib.metadata",
    "markdown_it",
    "pygments",
)

_CHECK = """
    import io, json, os, sys
    from contextlib import redirect_stdout
    os.environ["COLUMNS"] = "250"  # every reason on one line
    sys.argv = ["reluth", "eligibility", "check", {path!r}]
    from reluth.cli import main
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({{"exit": code, "output": out.getvalue(), "modules": sorted(sys.modules)}}))
    """


def _check_eligible(monkeypatch: pytest.MonkeyPatch, lang: str) -> dict[str, object]:
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "patients" / "eligible.json"
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", lang)
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    return _run(_CHECK.format(path=str(path)))


def test_eligibility_check_loads_only_what_it_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _check_eligible(monkeypatch, "C.UTF-8")
    assert out["exit"] == 0, out["output"]
    assert "Status: eligible" in str(out["output"])
    assert "184000 /mm³" in str(out["output"])  # numbers formatted (without Babel in English)
    loaded = set(out["modules"])  # type: ignore[call-overload]
    assert not loaded & set(CHECK_DENIED), sorted(loaded & set(CHECK_DENIED))


def test_eligibility_check_in_french_still_formats_with_babel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = _check_eligible(monkeypatch, "fr_FR.UTF-8")
    assert out["exit"] == 0, out["output"]
    text = str(out["output"])
    assert "Plaquettes" in text and "184\u202f000 /mm³" in text, text  # grouped, Babel's space
    assert "11,8 g/dL" in text


def _outcome(coercion: Any, value: object, param: Any, ctx: Any) -> str:
    try:
        return repr(coercion.coerce(value, param=param, ctx=ctx))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def test_plain_coercion_equals_typers_for_every_parameter(tmp_path: object) -> None:
    """reluth.cli coerces the plain values of every command's parameters without pydantic;
    for each parameter and a set of values (absent, words, numbers, paths that exist or not,
    values Typer refuses) the result, or the error, is Typer's own."""
    from pathlib import Path

    import typer
    from typer._click import Context
    from typer._coercion import build_runtime_param
    from typer.core import _TyperParameter

    existing = Path(str(tmp_path)) / "file.json"
    existing.write_text("{}")
    values = [None, "", "abc", " 5", "5", "-3", "007", "1_000", "0", "-0", "99", "3.5", "٣",
              str(existing), str(existing.parent), str(existing) + ".missing", "a/b/", "-",
              5, 0, -1, True, False, ("a", "b"), [1]]  # fmt: skip
    compared = 0
    for module in cli.domain_modules():
        commands = list(cli.load_module_commands(module).values())
        while commands:
            command = commands.pop()
            commands.extend(getattr(command, "commands", {}).values())
            ctx = Context(command)
            for param in command.params:
                if not isinstance(param, _TyperParameter):
                    continue
                descriptor = param.type_descriptor
                for value in values:
                    mine = cli.PlainCoercion(
                        parameter_info=descriptor.parameter_info,
                        annotation=descriptor.annotation,
                    )
                    got = _outcome(mine, value, param, ctx)
                    param._runtime_param = None
                    typers = build_runtime_param(descriptor)
                    want = _outcome(typers, value, param, ctx)
                    param._runtime_param = None
                    assert got == want, (command.name, param.name, value)
                    compared += 1
    assert compared > 1000
    assert typer.__version__  # the Typer whose coercion this equals


def test_no_pydantic_plugins_is_what_pydantic_does_when_they_are_disabled() -> None:
    code = """
        import json, os, sys
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = {env!r}
        {install}
        from pydantic import BaseModel
        from pydantic.plugin._loader import get_plugins

        class M(BaseModel):
            x: int

        print(json.dumps({{"plugins": list(get_plugins()), "x": M(x="3").x,
                          "metadata": "importlib.metadata" in sys.modules}}))
        """
    shim = "from reluth.cli import _no_pydantic_plugins; _no_pydantic_plugins()"
    theirs = _run(code.format(env="__all__", install="pass"))
    ours = _run(code.format(env="__all__", install=shim))
    assert theirs == {"plugins": [], "x": 3, "metadata": True}
    assert ours == {"plugins": [], "x": 3, "metadata": False}
    # a list of plugins to skip (or none) is left to pydantic's own loader
    assert _run(code.format(env="other_plugin", install=shim))["metadata"] is True
