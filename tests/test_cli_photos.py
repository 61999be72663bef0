"""`facesearch detect` and `compare` through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesearch.cli import app

runner = CliRunner()


@pytest.mark.realmodel
def test_detect_json_lists_both_faces(faces_dir: Path) -> None:
    result = runner.invoke(app, ["detect", str(faces_dir / "groups" / "fr_two_people.jpg"), "--json"])
    assert result.exit_code == 0, result.output
    faces = json.loads(result.output)["faces"]
    assert len(faces) == 2
    assert set(faces[0]) == {"box", "score", "landmarks", "quality"}
    assert len(faces[0]["landmarks"]) == 5


@pytest.mark.realmodel
def test_detect_no_face_is_not_an_error(faces_dir: Path) -> None:
    result = runner.invoke(app, ["detect", str(faces_dir / "noface" / "skimage_coffee.jpg")])
    assert result.exit_code == 0
    assert "No face found" in result.output


@pytest.mark.realmodel
def test_compare_same_and_different(faces_dir: Path) -> None:
    people = faces_dir / "people"
    same = runner.invoke(
        app, ["compare", str(people / "obama" / "obama.jpg"), str(people / "obama" / "obama2.jpg")]
    )
    assert same.exit_code == 0 and same.output.startswith("same person"), same.output
    diff = runner.invoke(
        app, ["compare", str(people / "obama" / "obama.jpg"), str(people / "biden" / "biden.jpg"), "--json"]
    )
    assert diff.exit_code == 0
    payload = json.loads(diff.output)
    assert payload["same_person"] is False and payload["distance"] > 0.6


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "IMAGE_DECODE_FAILED"),
        (b"hello, not a photo\n", "IMAGE_DECODE_FAILED"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "IMAGE_DECODE_FAILED"),
    ],
)
def test_bad_input_prints_code_and_exits_2(tmp_path: Path, content: bytes, code: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    result = runner.invoke(app, ["detect", str(path)])
    assert result.exit_code == 2
    assert f"error {code}" in result.output
    assert "Traceback" not in result.output


def test_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")])
    assert result.exit_code == 2
    assert "error VALIDATION_ERROR" in result.output
