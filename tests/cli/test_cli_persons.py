"""`facesearch persons ...`, `groups ...` and `keys list -c` through Typer's runner: every person and
group operation of the HTTP API, with its fields under --json (#20.1)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

Cli = Callable[..., Result]


def ok(cli: Cli, data: Path, *args: str | Path) -> Any:
    result = cli(*args, "--json", "--data-dir", data)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def data(cli: Cli, tmp_path: Path) -> Path:
    assert cli("collections", "create", "staff", "--data-dir", tmp_path).exit_code == 0
    return tmp_path


def test_persons_without_photos_and_groups(cli: Cli, data: Path) -> None:
    rose = ok(cli, data, "persons", "create", "-c", "staff", "--external-id", "rose", "--name", "Rose",
              "--metadata", '{"team": "night"}', "-g", "vip")  # fmt: skip
    assert (rose["external_id"], rose["name"], rose["metadata"], rose["groups"]) == (
        "rose",
        "Rose",
        {"team": "night"},
        ["vip"],
    )
    assert rose["id"].startswith("per_") and rose["faces"] == []
    shown = ok(cli, data, "persons", "show", "rose", "-c", "staff")  # by external id
    assert shown["id"] == rose["id"]
    updated = ok(
        cli, data, "persons", "update", rose["id"], "-c", "staff", "--name", "Rose L", "--groups", ""
    )
    assert updated["name"] == "Rose L" and updated["metadata"] == {"team": "night"}
    assert updated["groups"] == ["default"]  # no group given: the collection's default group

    group = ok(cli, data, "groups", "create", "night-shift", "-c", "staff")
    assert group["name"] == "night-shift" and group["id"].startswith("grp_")
    member = ok(cli, data, "groups", "add", "night-shift", "rose", "-c", "staff")
    assert "night-shift" in member["groups"]
    listed = ok(cli, data, "groups", "list", "-c", "staff")["groups"]
    counts = {g["name"]: g["person_count"] for g in listed}
    assert counts["night-shift"] == 1 and counts["vip"] == 0
    assert (
        "night-shift" not in ok(cli, data, "groups", "remove", "night-shift", "rose", "-c", "staff")["groups"]
    )
    assert ok(cli, data, "groups", "delete", "night-shift", "-c", "staff")["deleted"] is True
    page = ok(cli, data, "persons", "list", "-c", "staff", "--name-prefix", "Rose")
    assert [p["external_id"] for p in page["persons"]] == ["rose"]

    bad = cli("persons", "create", "-c", "staff", "--metadata", "[1]", "--data-dir", data)
    assert bad.exit_code == 2 and "VALIDATION_ERROR" in bad.output
    taken = cli("persons", "create", "-c", "staff", "--external-id", "rose", "--data-dir", data)
    assert taken.exit_code == 2 and "CONFLICT" in taken.output
    asked = cli("persons", "delete", "rose", "-c", "staff", "--data-dir", data, input="n\n")
    assert (
        asked.exit_code == 1 and ok(cli, data, "persons", "show", "rose", "-c", "staff")["id"] == rose["id"]
    )
    gone = ok(cli, data, "persons", "delete", "rose", "-c", "staff", "--yes")
    assert gone == {"id": rose["id"], "deleted": True}
    missing = cli("persons", "show", "rose", "-c", "staff", "--data-dir", data)
    assert missing.exit_code == 2 and "NOT_FOUND" in missing.output


def test_keys_list_by_collection(cli: Cli, data: Path) -> None:
    assert cli("collections", "create", "lobby", "--data-dir", data).exit_code == 0
    for name, scope in (("door", "lobby"), ("desk", "staff")):
        made = cli("keys", "create", name, "--collections", scope, "--data-dir", data)
        assert made.exit_code == 0, made.output
    assert cli("keys", "create", "ops", "--role", "admin", "--data-dir", data).exit_code == 0
    reach = {k["name"] for k in ok(cli, data, "keys", "list", "-c", "lobby")}
    assert reach == {"door", "ops"}  # the keys limited to it and the unlimited one
    nope = cli("keys", "list", "-c", "nope", "--data-dir", data)
    assert nope.exit_code == 2 and "NOT_FOUND" in nope.output


@pytest.mark.realmodel
def test_faces_of_a_person(cli: Cli, data: Path, faces_dir: Path) -> None:
    people = faces_dir / "people" / "obama"
    made = ok(cli, data, "persons", "create", "-c", "staff", "--external-id", "obama", people / "obama.jpg")
    assert len(made["faces"]) == 1
    face = ok(cli, data, "persons", "add-face", "obama", people / "obama2.jpg", "-c", "staff")
    assert face["id"].startswith("fac_") and face["person_id"] == made["id"]
    again = cli("persons", "add-face", "obama", people / "obama2.jpg", "-c", "staff", "--data-dir", data)
    assert again.exit_code == 2 and "CONFLICT" in again.output  # the same photo twice
    text = cli("persons", "show", "obama", "-c", "staff", "--data-dir", data)
    assert text.exit_code == 0 and face["id"] in text.stdout
    assert ok(cli, data, "persons", "delete-face", face["id"], "-c", "staff")["deleted"] is True
    assert len(ok(cli, data, "persons", "show", "obama", "-c", "staff")["faces"]) == 1
