"""The `facesearch` command line."""

from __future__ import annotations

import typer

from facesearch.cli import photos

app = typer.Typer(
    name="facesearch",
    help="Self-hosted face identification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(photos.detect)
app.command()(photos.compare)


def main() -> None:
    """Entry point of the console script."""
    app()
