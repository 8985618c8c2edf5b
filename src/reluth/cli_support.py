"""What every command shares: reading input files, printing JSON or tables, turning named
errors into one clear message and an exit code (never a traceback), and the authenticated actor
of a command that reads or writes the trial database.

A command that touches the trial database obtains its actor from ``RELUTH_TOKEN`` (an API token
or a CLI login token) or from the login that ``reluth login`` stored for that database, and
refuses without one (exit 4). Nobody is taken at their word: there is no ``--as``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from reluth.errors import PermissionDenied, ReluthError, ValidationError
from reluth.values import parse_date, to_jsonable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.progress import Progress
    from sqlalchemy import Engine

    from reluth.auth.actor import Actor
    from reluth.core.context import Ctx
    from reluth.core.trial import Trial

__all__ = ["parse_date", "to_jsonable"]

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def load_json(path: Path, what: str = "input file") -> Any:
    """Read a JSON file; a missing file or malformed JSON is a ValidationError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            str(path),
            f"{what} not found",
            "an existing JSON file",
            code="file_not_found",
            params={"what": what},
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ValidationError(
            str(path),
            f"cannot read {what}: {exc}",
            "a UTF-8 JSON file",
            code="file_unreadable",
            params={"what": what, "problem": str(exc)},
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            str(path),
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            "JSON",
            code="malformed_json",
            params={"line": exc.lineno, "column": exc.colno, "problem": exc.msg},
        ) from None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def table(*columns: str, title: str | None = None, **options: Any) -> Any:
    """A Rich table for people, its column headers and title in the reader's language
    (``LANG``): pass them marked with ``N_`` (a title with values, already translated and
    formatted, is shown as given: gettext leaves a text it does not know as it is)."""
    from rich.table import Table

    from reluth.i18n import gettext

    return Table(*(gettext(c) for c in columns), title=gettext(title) if title else None, **options)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for Typer commands: a ReluthError becomes one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ReluthError as exc:
            from rich.markup import escape

            from reluth.i18n import gettext
            from reluth.i18n.messages import describe

            prefix = gettext("error:")  # outside the f-string: Babel extracts it
            err_console.print(
                f"[bold red]{prefix}[/] {escape(describe(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def progress_bar(transient: bool = True, disable: bool = False) -> Progress:
    """The progress display of long commands: description, bar, n/total, elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
        disable=disable,
    )


# ------------------------------------------------------------------- authenticated commands

NOT_LOGGED_IN = "not logged in: run `reluth login USERNAME` (or set RELUTH_TOKEN to an API token)"


class NotLoggedIn(PermissionDenied):
    def __init__(self, detail: str = NOT_LOGGED_IN) -> None:
        super().__init__(detail)


def config_dir() -> Path:
    """Where ``reluth login`` keeps its tokens: ``$RELUTH_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/reluth``, else ``~/.config/reluth``."""
    import os

    explicit = os.environ.get("RELUTH_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "reluth"


def _login_key(database_url: str) -> str:
    import hashlib

    return hashlib.sha256(database_url.encode("utf-8")).hexdigest()[:24]


def _logins_file() -> Path:
    return config_dir() / "logins.json"


def _read_logins() -> dict[str, Any]:
    path = _logins_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_logins(data: dict[str, Any]) -> None:
    """Write the logins file readable by its owner only (0600, in a 0700 directory)."""
    import os

    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = _logins_file()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def store_login(database_url: str, username: str, token: str) -> Path:
    from sqlalchemy.engine import make_url

    data = _read_logins()
    data[_login_key(database_url)] = {
        "database": make_url(database_url).render_as_string(hide_password=True),
        "username": username,
        "token": token,
    }
    _write_logins(data)
    return _logins_file()


def forget_login(database_url: str) -> bool:
    data = _read_logins()
    if data.pop(_login_key(database_url), None) is None:
        return False
    _write_logins(data)
    return True


def stored_token(database_url: str) -> str | None:
    entry = _read_logins().get(_login_key(database_url))
    token = entry.get("token") if isinstance(entry, dict) else None
    return token if isinstance(token, str) else None


def database_url(explicit: str | None = None) -> str:
    from reluth.config import get_settings

    return explicit or get_settings().database_url


def open_engine(explicit_url: str | None = None) -> Engine:
    """An engine on the configured trial database (refused if it has no schema yet)."""
    from reluth.db.engine import make_engine

    return make_engine(database_url(explicit_url))


def command_trial() -> Trial:
    from reluth.core.trial import Trial

    return Trial.default()


def token_from_environment(url: str) -> str | None:
    import os

    return os.environ.get("RELUTH_TOKEN") or stored_token(url)


def resolve_cli_actor(engine: Engine, url: str, allow_bootstrap: bool = False) -> Actor:
    """The actor of this command: from ``RELUTH_TOKEN`` or the stored login; on a database
    with no account yet and ``allow_bootstrap``, the operator (first admin only)."""
    import getpass

    from reluth.auth import service as auth
    from reluth.core.trial import utc_now
    from reluth.db.session import read_session

    token = token_from_environment(url)
    with read_session(engine) as session:
        try:
            any_account = auth.has_accounts(session)
        except Exception as exc:  # no schema yet: only `reluth db init` helps
            raise NotLoggedIn(
                f"the database has no reluth schema ({type(exc).__name__}): run `reluth db init`"
            ) from None
        if not any_account and allow_bootstrap:
            return auth.bootstrap_actor(session, getpass.getuser())
        if token is None:
            raise NotLoggedIn()
        actor = auth.actor_for_token(session, token, utc_now())
    if actor is None:
        raise NotLoggedIn(
            "your login or token is not valid (expired, revoked or unknown): "
            "run `reluth login USERNAME` again"
        )
    return actor


@contextmanager
def cli_context(
    write: bool = False,
    reason: str | None = None,
    allow_bootstrap: bool = False,
    url: str | None = None,
) -> Iterator[Ctx]:
    """The service context of one command: the authenticated actor, a unit of work (``write``)
    or a read-only session, and the trial."""
    from reluth.core.context import reading, writing

    db_url = database_url(url)
    engine = open_engine(db_url)
    try:
        actor = resolve_cli_actor(engine, db_url, allow_bootstrap)
        trial = command_trial()
        if write:
            with writing(engine, actor, trial, reason=reason) as ctx:
                yield ctx
        else:
            with reading(engine, actor, trial) as ctx:
                yield ctx
    finally:
        engine.dispose()
