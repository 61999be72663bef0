"""`facesearch export` / `facesearch import` with real photos and the default pack: a round trip."""

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


def test_export_wipe_import_same_answers(cli: Cli, tmp_path: Path, faces_dir: Path) -> None:
    people, probes = faces_dir / "people", faces_dir / "probes"
    data = tmp_path / "data"
    assert cli("collections", "create", "staff", "--data-dir", data).exit_code == 0
    for folder in sorted(people.iterdir()):
        photos = sorted(folder.iterdir())
        ok(cli, data, "persons", "create", "-c", "staff", "--external-id", folder.name, *photos)
    queries = [probes / "obama1.jpg", probes / "alex_lacamoire1.jpg", people / "biden" / "biden2.jpg"]

    def answers() -> list[list[tuple[str, float]]]:
        out = []
        for q in queries:
            found = ok(cli, data, "identify", q, "-c", "staff", "--top-k", "3", "--threshold", "0")
            out.append([(m["external_id"], m["similarity"]) for m in found["matches"]])
        return out

    before = answers()
    archive = tmp_path / "staff.tar.gz"
    result = cli("export", "staff", "--out", archive, "--json", "--data-dir", data)
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)  # the progress bar went to stderr
    faces = exported["counts"]["faces"]
    assert faces == 9 and exported["pack"]["calibration_sha256"]
    assert ok(cli, data, "collections", "delete", "staff", "--yes")
    again = cli("identify", queries[0], "-c", "staff", "--data-dir", data)
    assert again.exit_code != 0  # wiped
    restored = ok(cli, data, "import", archive)
    assert (restored["name"], restored["person_count"], restored["face_count"]) == ("staff", 5, 9)
    after = answers()
    assert after == before
    ops = [e["operation"] for e in ok(cli, data, "audit")["entries"]]
    assert ops == ["export", "delete_collection", "import"]
    size = archive.stat().st_size
    print(
        f"round trip of {faces} faces ({restored['person_count']} persons): archive {size:,} bytes, "
        f"{size / faces:,.0f} bytes per face (gzip; embeddings and 160-px thumbnails); {len(queries)} "
        f"identifies x top 3 before and after: identical ({sum(len(a) for a in after)} matches)"
    )
