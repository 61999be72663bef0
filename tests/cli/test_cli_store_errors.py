"""`facesearch enroll | identify | persons list` on bad input, through Typer's runner: each exits 2
with 'error CODE' on stderr before any face model is loaded. The real enrolment is in
test_cli_gallery.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]


@pytest.fixture
def data(cli: Cli, tmp_path: Path) -> Path:
    """A data folder with one empty collection, 'staff'."""
    folder = tmp_path / "data"
    made = cli("collections", "create", "staff", "--data-dir", folder)
    assert made.exit_code == 0, made.output
    return folder


def assert_error(result: Result, code: str, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error {code}: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.output


# --- enroll ---------------------------------------------------------------------------------------


def test_enroll_unknown_collection(cli: Cli, data: Path, tmp_path: Path) -> None:
    (tmp_path / "people" / "ann").mkdir(parents=True)
    result = cli("enroll", tmp_path / "people", "-c", "no_such", "--data-dir", data)
    assert_error(result, "NOT_FOUND", "collection 'no_such' not found")
    assert "photos enrolled" not in result.output


def test_enroll_missing_folder(cli: Cli, data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    result = cli("enroll", missing, "--collection", "staff", "--data-dir", data)
    assert_error(result, "VALIDATION_ERROR", f"no such folder: {missing}")


def test_enroll_a_file_instead_of_a_folder(cli: Cli, data: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    result = cli("enroll", photo, "-c", "staff", "--data-dir", data)
    assert_error(result, "VALIDATION_ERROR", "no such folder")


def test_enroll_needs_a_collection(cli: Cli, data: Path, tmp_path: Path) -> None:
    result = cli("enroll", tmp_path, "--data-dir", data)
    assert result.exit_code == 2
    assert "Missing option '--collection'" in result.output


def test_enroll_a_folder_without_photos(cli: Cli, data: Path, tmp_path: Path) -> None:
    people = tmp_path / "people"
    (people / "ann").mkdir(parents=True)
    (people / "ann" / "notes.txt").write_text("not a photo")
    (people / "loose.jpg").write_bytes(b"a photo outside any person folder is not read")
    result = cli("enroll", people, "-c", "staff", "--data-dir", data)
    assert result.exit_code == 0, result.output
    assert "0 photos enrolled, 0 already enrolled, 0 refused" in result.stdout.splitlines()
    persons = cli("persons", "list", "-c", "staff", "--json", "--data-dir", data)
    assert json.loads(persons.stdout)["persons"] == []


# --- identify -------------------------------------------------------------------------------------


def test_identify_missing_photo(cli: Cli, data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nobody.jpg"
    result = cli("identify", missing, "-c", "staff", "--data-dir", data)
    assert_error(result, "VALIDATION_ERROR", f"no such file: {missing}")


def test_identify_unknown_collection(cli: Cli, data: Path, faces_dir: Path) -> None:
    result = cli("identify", faces_dir / "probes" / "obama1.jpg", "-c", "no_such", "--data-dir", data)
    assert_error(result, "NOT_FOUND", "collection 'no_such' not found")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--top-k", "0"], "top_k must be an integer from 1 to 100"),
        (["--top-k", "101"], "top_k must be an integer from 1 to 100"),
        (["--threshold", "1.5"], "threshold must be a number from 0 to 1"),
        (["--threshold", "-0.1"], "threshold must be a number from 0 to 1"),
    ],
)
def test_identify_bad_options(cli: Cli, data: Path, faces_dir: Path, option: list[str], message: str) -> None:
    probe = faces_dir / "probes" / "obama1.jpg"
    result = cli("identify", probe, "-c", "staff", *option, "--data-dir", data)
    assert_error(result, "VALIDATION_ERROR", message)


def test_identify_not_a_photo(cli: Cli, data: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello, not a photo\n")
    result = cli("identify", text, "-c", "staff", "--data-dir", data)
    assert_error(result, "IMAGE_DECODE_FAILED", "")


# --- persons list ---------------------------------------------------------------------------------


def test_persons_list_of_an_empty_collection(cli: Cli, data: Path) -> None:
    text = cli("persons", "list", "-c", "staff", "--data-dir", data)
    assert text.exit_code == 0, text.output
    assert text.stdout == ""
    as_json = cli("persons", "list", "--collection", "staff", "--json", "--data-dir", data)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {"persons": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-c", "no_such"], "NOT_FOUND", "collection 'no_such' not found"),
        (["-c", "staff", "--limit", "0"], "VALIDATION_ERROR", "limit must be from 1 to 1000"),
        (["-c", "staff", "--limit", "1001"], "VALIDATION_ERROR", "limit must be from 1 to 1000"),
        (["-c", "staff", "--cursor", "not-a-cursor"], "VALIDATION_ERROR", "invalid cursor"),
    ],
)
def test_persons_list_bad_input(cli: Cli, data: Path, args: list[str], code: str, message: str) -> None:
    assert_error(cli("persons", "list", *args, "--data-dir", data), code, message)
