"""The `cli` fixture for the `facesearch` command tests: Typer's runner in an environment that does not
leak in from the developer's shell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from facesearch.cli import app

# Settings a shell may carry are unset, so every test sees only what it passes.
# FACESEARCH_WORKERS=0: in-process embedding wherever the command allows it.
BASE_ENV: dict[str, str | None] = {
    "FACESEARCH_WORKERS": "0",
    "FACESEARCH_DATA_DIR": None,
    "FACESEARCH_DATABASE_URL": None,
    "FACESEARCH_MODELS_DIR": None,
    "FACESEARCH_DEFAULT_PACK": None,
}

Cli = Callable[..., Result]


def run_cli(*args: str | Path, env: dict[str, str | None] | None = None, input: str | None = None) -> Result:
    """`facesearch ARGS...` through Typer's runner, with BASE_ENV (then ``env``) in the environment."""
    return CliRunner(env=BASE_ENV).invoke(app, [str(a) for a in args], env=env, input=input)


@pytest.fixture(scope="session")
def cli() -> Cli:
    """``cli("collections", "list", "--data-dir", folder)`` runs the command; returns typer's Result."""
    return run_cli
