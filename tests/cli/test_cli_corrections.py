"""`facesearch persons not-this / negatives / different / merge / split` and `facesearch unknowns ...`
with real photos and the default pack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

Cli = Callable[..., Result]
pytestmark = pytest.mark.realmodel


def ok(cli: Cli, data: Path, *args: str | Path) -> Any:
    result = cli(*args, "--json", "--data-dir", data)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_corrections_and_unknowns_from_the_command_line(cli: Cli, tmp_path: Path, faces_dir: Path) -> None:
    people = faces_dir / "people"
    data = tmp_path
    settings = '{"remember_unknown": true}'
    assert cli("collections", "create", "staff", "--settings", settings, "--data-dir", data).exit_code == 0
    obama = ok(
        cli, data, "persons", "create", "-c", "staff", "--external-id", "obama", people / "obama/obama.jpg"
    )
    ok(cli, data, "persons", "create", "-c", "staff", "--external-id", "biden", people / "biden/biden.jpg")
    # "Not this person": Biden's second photo is recorded as not Obama; Obama is still found.
    neg = ok(cli, data, "persons", "not-this", "obama", people / "biden/biden2.jpg", "-c", "staff")
    assert neg["id"].startswith("neg_") and neg["removed_face_id"] is None
    assert [n["id"] for n in ok(cli, data, "persons", "negatives", "obama", "-c", "staff")["negatives"]] == [
        neg["id"]
    ]
    found = ok(cli, data, "identify", faces_dir / "probes/obama1.jpg", "-c", "staff")
    assert found["matches"][0]["external_id"] == "obama" and found["vetoed"] == 0
    lax = ok(
        cli, data, "identify", people / "biden/biden2.jpg", "-c", "staff", "--threshold", "0", "--top-k", "2"
    )
    assert [m["external_id"] for m in lax["matches"]] == ["biden"] and lax["vetoed"] == 1
    ok(cli, data, "persons", "delete-negative", "obama", neg["id"], "-c", "staff")
    # Different people, then merge (refused while recorded as different) and split.
    barack = ok(
        cli, data, "persons", "create", "-c", "staff", "--external-id", "barack", people / "obama/obama2.jpg"
    )
    ok(cli, data, "persons", "different", "obama", "barack", "-c", "staff")
    refused = cli("persons", "merge", "obama", "barack", "-c", "staff", "--yes", "--data-dir", data)
    assert refused.exit_code != 0 and "different people" in refused.output
    ok(cli, data, "persons", "different", "obama", "barack", "-c", "staff", "--remove")
    merged = ok(cli, data, "persons", "merge", "obama", "barack", "-c", "staff", "--yes")
    assert merged["id"] == obama["id"] and len(merged["faces"]) == 2
    gone = cli("persons", "show", barack["id"], "-c", "staff", "--data-dir", data)
    assert gone.exit_code != 0 and obama["id"] in gone.output
    split = ok(
        cli, data, "persons", "split", "obama", merged["faces"][1]["id"], "-c", "staff", "--external-id", "b2"
    )
    assert split["external_id"] == "b2" and len(split["faces"]) == 1
    # Unknown faces: Kit Harington is seen twice, clustered, and named in one command.
    for photo in ("john1.jpeg", "john2.jpeg"):
        assert ok(cli, data, "identify", people / "kit_harington" / photo, "-c", "staff")["unknown_id"]
    listed = ok(cli, data, "unknowns", "list", "-c", "staff")["unknowns"]
    assert [u["source"] for u in listed] == ["identify", "identify"] and listed[0]["request_id"] is None
    clusters = ok(cli, data, "unknowns", "clusters", "-c", "staff")
    assert clusters["unknown_faces"] == 2 and [c["size"] for c in clusters["clusters"]] == [2]
    text = cli("unknowns", "clusters", "-c", "staff", "--data-dir", data)
    assert "2 unknown face(s), 1 cluster(s)" in text.output
    named = ok(
        cli, data, "unknowns", "name", clusters["clusters"][0]["id"], "-c", "staff", "--external-id", "kit"
    )
    assert named["faces_added"] == 2
    again = ok(cli, data, "identify", people / "kit_harington/john1.jpeg", "-c", "staff")
    assert again["matches"][0]["external_id"] == "kit"
    assert ok(cli, data, "unknowns", "clusters", "-c", "staff")["clusters"] == []
