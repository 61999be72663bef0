"""`facesearch sources new-key` and `facesearch collections migrate` with real photos: retina -> onnx."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

Cli = Callable[..., Result]
REPO = Path(__file__).resolve().parents[2]


def test_new_key_goes_to_a_private_file(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "source.key"
    assert cli("sources", "new-key", "--out", out).exit_code == 0
    assert oct(out.stat().st_mode & 0o777) == "0o600" and len(out.read_text().strip()) == 44
    again = cli("sources", "new-key", "--out", out)
    assert again.exit_code != 0 and "never overwritten" in again.output
    printed = json.loads(cli("sources", "new-key", "--json").stdout)["key"]
    assert len(printed) == 44 and printed != out.read_text().strip()


@pytest.mark.realmodel
def test_migrate_a_collection_to_another_pack(cli: Cli, tmp_path: Path, faces_dir: Path) -> None:
    models = REPO / "data" / "models"
    if not (models / "retina").is_dir() or not (models / "onnx").is_dir():
        pytest.skip("the retina and onnx packs are not installed (make models)")
    key = json.loads(cli("sources", "new-key", "--json").stdout)["key"]
    env = {"FACESEARCH_MODELS_DIR": str(models), "FACESEARCH_SOURCE_KEY": key}
    data = tmp_path / "data"

    def ok(*args: str | Path) -> Any:
        result = cli(*args, "--json", "--data-dir", data, env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    people = faces_dir / "people"
    coll = ok("collections", "create", "staff", "--pack", "retina", "--settings", '{"keep_source": true}')
    assert coll["pack"] == "retina"
    for folder in sorted(people.iterdir()):
        ok("persons", "create", "-c", "staff", "--external-id", folder.name, *sorted(folder.iterdir()))
    probe = faces_dir / "probes" / "obama1.jpg"
    assert [m["external_id"] for m in ok("identify", probe, "-c", "staff")["matches"]] == ["obama"]
    done = ok("collections", "migrate", "staff", "--pack", "onnx")
    assert (done["state"], done["done"], done["total"], done["failed"]) == ("done", 9, 9, {})
    listed = ok("collections", "list")
    rows = listed["collections"] if isinstance(listed, dict) else listed
    assert [c["pack"] for c in rows if c["name"] == "staff"] == ["onnx"]
    found = ok("identify", probe, "-c", "staff")
    assert [m["external_id"] for m in found["matches"]] == ["obama"]
    stranger = ok("identify", faces_dir / "probes" / "alex_lacamoire1.jpg", "-c", "staff")
    assert [m["external_id"] for m in stranger["matches"]] == ["alex_lacamoire"]
    print(f"migrated 9 real faces retina -> onnx from their sealed sources: {done['result']}")
