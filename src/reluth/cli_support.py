"""What every command shares: reading input files, printing JSON or tables, and turning
named errors into one clear message and an exit code (never a traceback)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reluth.errors import ReluthError, ValidationError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def load_json(path: Path, what: str = "input file") -> Any:
    """Read a JSON file; a missing file or malformed JSON is a ValidationError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(str(path), f"{what} not found", "an existing JSON file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ValidationError(
            str(path), f"cannot read {what}: {exc}", "a UTF-8 JSON file"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            str(path), f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", "JSON"
        ) from None


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, pydantic models, dates, Decimals and enums as plain JSON values."""
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() and abs(obj) < 2**53 else float(obj)
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for Typer commands: a ReluthError becomes one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ReluthError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def parse_date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValidationError(field, f"not a date: {text!r}", "YYYY-MM-DD") from None


def progress_bar(transient: bool = True, disable: bool = False) -> Progress:
    """The progress display of long commands: description, bar, n/total, elapsed time."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
        disable=disable,
    )
