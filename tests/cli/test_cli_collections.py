"""`facesearch collections create | list | delete` through Typer's runner (no face model needed)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]
CREATED = re.compile(r"^created collection (\S+) \((col_\S+), pack (\S+)\)$", re.MULTILINE)


def listed(cli: Cli, data: Path) -> list[dict[str, object]]:
    result = cli("collections", "list", "--json", "--data-dir", data)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_create_prints_name_id_and_default_pack(cli: Cli, tmp_path: Path) -> None:
    result = cli("collections", "create", "staff", "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    match = CREATED.search(result.stdout)
    assert match is not None, result.stdout
    assert match.group(1) == "staff" and match.group(3) == "dlib"
    assert result.stderr == ""


def test_list_on_a_fresh_data_dir(cli: Cli, tmp_path: Path) -> None:
    result = cli("collections", "list", "--data-dir", tmp_path / "fresh")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "No collections yet: facesearch collections create NAME"
    assert listed(cli, tmp_path / "fresh") == []


def test_list_text_and_json_show_what_was_created(cli: Cli, tmp_path: Path) -> None:
    made = cli(
        "collections", "create", "guards", "--kind", "watchlist", "--title", "Guards", "--data-dir", tmp_path
    )
    assert made.exit_code == 0, made.output
    guards_id = CREATED.search(made.stdout).group(2)  # type: ignore[union-attr]
    assert cli("collections", "create", "visitors", "--data-dir", tmp_path).exit_code == 0

    text = cli("collections", "list", "--data-dir", tmp_path)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert len(lines) == 2
    guards = next(line for line in lines if line.startswith("guards "))
    assert guards.split() == ["guards", "0", "persons", "0", "faces", "watchlist", "dlib", guards_id]

    rows = {r["name"]: r for r in listed(cli, tmp_path)}
    assert set(rows) == {"guards", "visitors"}
    # The HTTP API's fields (GET /v1/collections), so one parser reads both.
    assert (
        rows["guards"].items()
        >= {
            "id": guards_id,
            "name": "guards",
            "kind": "watchlist",
            "pack": "dlib",
            "person_count": 0,
            "face_count": 0,
        }.items()
    )
    assert rows["visitors"]["kind"] == "internal"


def test_data_dir_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    env = {"FACESEARCH_DATA_DIR": str(tmp_path / "env")}
    assert cli("collections", "create", "from_env", env=env).exit_code == 0
    assert [r["name"] for r in listed(cli, tmp_path / "env")] == ["from_env"]
    # --data-dir wins over the environment.
    assert listed(cli, tmp_path / "other") == []


@pytest.mark.parametrize("name", ["bad name!", ".dot_first", "col_looks_like_an_id", "x" * 65])
def test_create_refuses_a_bad_name(cli: Cli, tmp_path: Path, name: str) -> None:
    result = cli("collections", "create", name, "--data-dir", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error VALIDATION_ERROR: name must be")
    assert "field: name" in result.stderr
    assert "Traceback" not in result.output
    assert listed(cli, tmp_path) == []


def test_create_refuses_a_taken_name(cli: Cli, tmp_path: Path) -> None:
    assert cli("collections", "create", "staff", "--data-dir", tmp_path).exit_code == 0
    again = cli("collections", "create", "staff", "--kind", "external", "--data-dir", tmp_path)
    assert again.exit_code == 2
    assert "error CONFLICT: collection name 'staff' is taken" in again.stderr
    rows = listed(cli, tmp_path)
    assert len(rows) == 1 and rows[0]["kind"] == "internal"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--settings", "{not json"], "--settings is not valid JSON"),
        (["--settings", '{"no_such_setting": 1}'], "unknown collection setting 'no_such_setting'"),
        (["--kind", "secret"], "kind must be one of internal, external, watchlist"),
        (["--pack", "no_such_pack"], "unknown model pack 'no_such_pack'"),
    ],
)
def test_create_refuses_bad_options(cli: Cli, tmp_path: Path, option: list[str], message: str) -> None:
    result = cli("collections", "create", "staff", *option, "--data-dir", tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error VALIDATION_ERROR: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert listed(cli, tmp_path) == []


def test_create_accepts_valid_settings(cli: Cli, tmp_path: Path) -> None:
    settings = '{"auto_enroll": true, "default_threshold": 0.5}'
    result = cli("collections", "create", "auto", "--settings", settings, "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert [r["name"] for r in listed(cli, tmp_path)] == ["auto"]


def test_create_refuses_settings_that_are_not_an_object(cli: Cli, tmp_path: Path) -> None:
    # Valid JSON that is not an object once ended in an AttributeError traceback.
    result = cli("collections", "create", "staff", "--settings", "[1, 2]", "--data-dir", tmp_path)
    assert result.exit_code == 2 and "error VALIDATION_ERROR: settings must be a JSON object" in result.stderr


def test_delete_with_yes_by_name_and_by_id(cli: Cli, tmp_path: Path) -> None:
    for name in ("one", "two", "three"):
        assert cli("collections", "create", name, "--data-dir", tmp_path).exit_code == 0
    two_id = next(r["id"] for r in listed(cli, tmp_path) if r["name"] == "two")

    by_name = cli("collections", "delete", "one", "--yes", "--data-dir", tmp_path)
    assert by_name.exit_code == 0, by_name.output
    assert by_name.stdout.strip() == "deleted collection one"
    by_id = cli("collections", "delete", two_id, "--yes", "--data-dir", tmp_path)
    assert by_id.exit_code == 0, by_id.output
    assert by_id.stdout.strip() == "deleted collection two"
    assert [r["name"] for r in listed(cli, tmp_path)] == ["three"]
    # The name is free again.
    assert cli("collections", "create", "one", "--data-dir", tmp_path).exit_code == 0


def test_delete_asks_first(cli: Cli, tmp_path: Path) -> None:
    assert cli("collections", "create", "keep", "--data-dir", tmp_path).exit_code == 0
    no = cli("collections", "delete", "keep", "--data-dir", tmp_path, input="n\n")
    assert no.exit_code == 1  # click's Abort
    assert "Delete keep with 0 persons and 0 faces?" in no.output
    assert "deleted collection" not in no.output
    assert [r["name"] for r in listed(cli, tmp_path)] == ["keep"]

    yes = cli("collections", "delete", "keep", "--data-dir", tmp_path, input="y\n")
    assert yes.exit_code == 0, yes.output
    assert "deleted collection keep" in yes.stdout
    assert listed(cli, tmp_path) == []


def test_delete_unknown_collection(cli: Cli, tmp_path: Path) -> None:
    assert cli("collections", "create", "staff", "--data-dir", tmp_path).exit_code == 0
    result = cli("collections", "delete", "nobody_here", "--yes", "--data-dir", tmp_path)
    assert result.exit_code == 2
    assert "error NOT_FOUND: collection 'nobody_here' not found" in result.stderr
    assert "Traceback" not in result.output
    assert [r["name"] for r in listed(cli, tmp_path)] == ["staff"]
