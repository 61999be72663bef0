"""Shared CLI plumbing: error handling, output, file reading."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from facesearch.errors import FaceSearchError, ValidationError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_BAD_INPUT = 2

#: The options every command that opens the data folder, or prints JSON, takes.
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="data folder (default: $FACESEARCH_DATA_DIR or ./data)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a FaceSearchError into 'error CODE: message' on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FaceSearchError as exc:
            typer.echo(f"error {exc.code}: {exc.message}", err=True)
            for key, value in exc.details.items():
                typer.echo(f"  {key}: {value}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper


def read_photo(path: Path, max_bytes: int) -> bytes:
    """The bytes of a photo file, refusing missing files and files over the byte limit."""
    from facesearch.errors import ImageTooLarge

    if not path.is_file():
        raise ValidationError(f"no such file: {path}", field="image")
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageTooLarge(
            f"{path} is {size} bytes, over the {max_bytes}-byte limit", details={"bytes": size}
        )
    return path.read_bytes()


def with_service(data_dir: Path | None, work: Callable[[Any], R]) -> R:
    """Run ``work(service)`` on the data folder's FaceSearch service, then close it."""
    from facesearch.cli.service import open_service

    svc = open_service(data_dir)
    try:
        return work(svc)
    finally:
        svc.close()


def emit(as_json: bool, payload: Callable[[], Any], text: str) -> None:
    """Print ``payload()`` as JSON (the HTTP API's shape) with --json, else the line ``text``."""
    if as_json:
        print_json(payload())
    else:
        typer.echo(text)


def print_json(payload: Any) -> None:
    """Write ``payload`` as indented JSON to stdout."""
    json.dump(payload, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def cli_audit(
    store: Any, operation: str, command: str, summary: dict[str, Any], collection_id: str | None = None
) -> None:
    """Record a command-line change in the audit log (as the HTTP API records its requests):
    no key (the command line acts as the data folder's owner), client ``cli:<user>``."""
    import getpass

    from facesearch.storage._audit import AuditEntry

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        user = "?"
    store.add_audit(
        AuditEntry(
            operation=operation,
            method="CLI",
            path=command,
            status=0,
            outcome="ok",
            collection_id=collection_id,
            summary=summary,
            client=f"cli:{user}",
        )
    )
