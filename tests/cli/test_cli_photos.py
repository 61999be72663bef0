"""`facesearch detect` and `verify` (and its first name, `compare`) through Typer's runner, with the
HTTP API's fields under --json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]


@pytest.mark.realmodel
def test_detect_json_has_the_http_fields(cli: Cli, faces_dir: Path, tmp_path: Path) -> None:
    photo = faces_dir / "groups" / "fr_two_people.jpg"
    result = cli("detect", photo, "--json", "--pack", "dlib", "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    # HOG with one upsampling finds faces of 40 px and more: the answer says so (32 asked for).
    assert len(payload["faces"]) == 2 and payload["smallest_face_size"] == 40
    assert set(payload["faces"][0]) == {"box", "detection_score", "landmarks", "quality"}  # as HTTP
    assert len(payload["faces"][0]["landmarks"]) == 5
    assert {"decode_ms", "detect_ms", "embed_ms"} <= set(payload["timings"])
    # A fresh process loads the models: that time is reported apart, not as detection (#20.5).
    assert payload["timings"]["load_ms"] > payload["timings"]["detect_ms"]


@pytest.mark.realmodel
def test_detect_no_face_is_not_an_error(cli: Cli, faces_dir: Path, tmp_path: Path) -> None:
    result = cli("detect", faces_dir / "noface" / "skimage_coffee.jpg", "--data-dir", tmp_path)
    assert result.exit_code == 0
    assert "No face found" in result.output and "faces of 32 px and more" in result.output


@pytest.mark.realmodel
def test_verify_two_photos_and_a_photo_against_a_person(cli: Cli, faces_dir: Path, tmp_path: Path) -> None:
    people = faces_dir / "people"
    obama, obama2, biden = (
        people / "obama" / "obama.jpg",
        people / "obama" / "obama2.jpg",
        people / "biden" / "biden.jpg",
    )
    same = cli("verify", obama, obama2, "--data-dir", tmp_path)
    assert same.exit_code == 0 and same.stdout.startswith("match: same person"), same.output
    diff = cli("verify", obama, biden, "--json", "--data-dir", tmp_path)
    assert diff.exit_code == 0, diff.output
    payload = json.loads(diff.stdout)
    assert payload["match"] is False and payload["searched"] == 1 and len(payload["faces"]) == 2
    old_name = cli("compare", obama, biden, "--data-dir", tmp_path)
    assert old_name.exit_code == 0 and old_name.stdout.startswith("no match")
    assert cli("collections", "create", "staff", "--data-dir", tmp_path).exit_code == 0
    made = cli("persons", "create", "-c", "staff", "--external-id", "obama", obama, "--data-dir", tmp_path)
    assert made.exit_code == 0, made.output
    against = cli("verify", obama2, "--person", "obama", "-c", "staff", "--json", "--data-dir", tmp_path)
    assert against.exit_code == 0, against.output
    assert json.loads(against.stdout)["match"] is True
    neither = cli("verify", obama, "--data-dir", tmp_path)
    assert neither.exit_code == 2 and "VALIDATION_ERROR" in neither.output


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "IMAGE_DECODE_FAILED"),
        (b"hello, not a photo\n", "IMAGE_DECODE_FAILED"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 50, "IMAGE_DECODE_FAILED"),
    ],
)
def test_bad_input_prints_code_and_exits_2(cli: Cli, tmp_path: Path, content: bytes, code: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    result = cli("detect", path, "--data-dir", tmp_path / "data")
    assert result.exit_code == 2
    assert f"error {code}" in result.output
    assert "Traceback" not in result.output


def test_missing_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("verify", tmp_path / "a.jpg", tmp_path / "b.jpg", "--data-dir", tmp_path / "data")
    assert result.exit_code == 2
    assert "error VALIDATION_ERROR" in result.output
