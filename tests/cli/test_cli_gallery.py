"""`facesearch enroll`, `identify`, `persons list` and `collections list` on a real gallery, through
Typer's runner with the real dlib pack.

One data folder for the module: the shared `people/` photos are enrolled in two runs (first photo of
each person, then the whole folder plus a person whose only photo has no face), as an interrupted
enrolment that is resumed. Every other test reads that folder through the CLI. The face model is
loaded by 6 invocations: the 2 enrolments and 4 identifications.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

Cli = Callable[..., Result]

COLLECTION = "gallery"
PEOPLE = {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
N_PHOTOS = 9  # photos with a face in people/
NO_FACE = "skimage_coffee.jpg"
SUMMARY = re.compile(r"^(\d+) photos enrolled, (\d+) already enrolled, (\d+) refused$", re.MULTILINE)


@dataclass
class Gallery:
    data: Path
    photos: Path  # people/ + nobody/skimage_coffee.jpg + obama/notes.txt
    first_run: Result  # enrolled the first photo of each person
    second_run: Result  # enrolled everything


def copy_folder(src: Path, dst: Path, only_first: bool = False) -> None:
    """Copy src/<person>/<photos> (file contents only: the shared folder is read-only)."""
    for person in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / person.name).mkdir(parents=True)
        photos = sorted(person.iterdir())
        for photo in photos[:1] if only_first else photos:
            shutil.copyfile(photo, dst / person.name / photo.name)


def summary(result: Result) -> tuple[int, int, int]:
    match = SUMMARY.search(result.stdout)
    assert match is not None, result.output
    enrolled, skipped, refused = (int(g) for g in match.groups())
    return enrolled, skipped, refused


@pytest.fixture(scope="module")
def gallery(cli: Cli, faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    root = tmp_path_factory.mktemp("cli_gallery")
    data, first, photos = root / "data", root / "first", root / "photos"
    copy_folder(faces_dir / "people", first, only_first=True)
    copy_folder(faces_dir / "people", photos)
    (photos / "obama" / "notes.txt").write_text("not a photo: ignored")
    (photos / "nobody").mkdir()
    shutil.copyfile(faces_dir / "noface" / NO_FACE, photos / "nobody" / NO_FACE)

    made = cli("collections", "create", COLLECTION, "--data-dir", data)
    assert made.exit_code == 0, made.output
    first_run = cli("enroll", first, "-c", COLLECTION, "--data-dir", data)
    assert first_run.exit_code == 0, first_run.output
    second_run = cli("enroll", photos, "--collection", COLLECTION, "--data-dir", data)
    assert second_run.exit_code == 0, second_run.output
    return Gallery(data, photos, first_run, second_run)


def persons_page(cli: Cli, gallery: Gallery, *args: str) -> dict[str, Any]:
    result = cli("persons", "list", "-c", COLLECTION, "--json", *args, "--data-dir", gallery.data)
    assert result.exit_code == 0, result.output
    page: dict[str, Any] = json.loads(result.stdout)
    return page


# --- enroll ---------------------------------------------------------------------------------------


@pytest.mark.realmodel
def test_enroll_first_run(gallery: Gallery) -> None:
    assert summary(gallery.first_run) == (len(PEOPLE), 0, 0)
    assert "refused" not in gallery.first_run.stdout.replace("0 refused", "")
    assert "Traceback" not in gallery.first_run.output


@pytest.mark.realmodel
def test_enroll_resume_adds_only_new_photos_and_names_the_refusal(gallery: Gallery) -> None:
    out = gallery.second_run.stdout
    # 4 new photos, the 5 of the first run skipped, the photo without a face refused; notes.txt ignored.
    assert summary(gallery.second_run) == (N_PHOTOS - len(PEOPLE), len(PEOPLE), 1)
    assert re.search(r"^\s+1\s+FACE_NOT_DETECTED\b", out, re.MULTILINE), out
    assert f"  refused {gallery.photos / 'nobody' / NO_FACE}: FACE_NOT_DETECTED" in out
    # The full list goes to a file in the data folder; a person with no photo enrolled is named.
    listed = re.search(r"every refused photo is listed in (\S+)$", out, re.MULTILINE)
    assert listed is not None, out
    rows = Path(listed.group(1)).read_text().splitlines()
    assert rows[0] == "path\tcode\treason" and rows[1].startswith(f"{gallery.photos / 'nobody' / NO_FACE}\t")
    assert Path(listed.group(1)).parent == gallery.data / "reports"
    assert "1 persons not enrolled (every photo refused): nobody" in out
    assert "notes.txt" not in gallery.second_run.output
    assert "Traceback" not in gallery.second_run.output


@pytest.mark.realmodel
def test_enroll_again_skips_every_enrolled_photo(cli: Cli, gallery: Gallery, faces_dir: Path) -> None:
    # The shared folder itself: same person folder names, same bytes -> nothing new.
    again = cli("enroll", faces_dir / "people", "-c", COLLECTION, "--data-dir", gallery.data)
    assert again.exit_code == 0, again.output
    assert summary(again) == (0, N_PHOTOS, 0)
    rows = json.loads(cli("collections", "list", "--json", "--data-dir", gallery.data).stdout)
    assert (rows[0]["person_count"], rows[0]["face_count"]) == (len(PEOPLE), N_PHOTOS)


# --- collections list after enrolment -------------------------------------------------------------


@pytest.mark.realmodel
def test_collections_list_counts_persons_and_faces(cli: Cli, gallery: Gallery) -> None:
    text = cli("collections", "list", "--data-dir", gallery.data)
    assert text.exit_code == 0, text.output
    fields = text.stdout.split()
    assert fields[:5] == [COLLECTION, str(len(PEOPLE)), "persons", str(N_PHOTOS), "faces"]
    as_json = cli("collections", "list", "--json", "--data-dir", gallery.data)
    [row] = json.loads(as_json.stdout)
    assert row["name"] == COLLECTION and row["person_count"] == len(PEOPLE) and row["face_count"] == N_PHOTOS
    assert row["id"] == fields[-1]


# --- persons list ---------------------------------------------------------------------------------


@pytest.mark.realmodel
def test_persons_list_text(cli: Cli, gallery: Gallery) -> None:
    result = cli("persons", "list", "-c", COLLECTION, "--data-dir", gallery.data)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(PEOPLE)  # 'nobody' has no face: no person was made
    by_id = {line.split()[0]: line for line in lines}
    assert set(by_id) == PEOPLE
    # external id, name (the folder name with spaces), groups, person id
    assert by_id["kit_harington"].split()[1:3] == ["kit", "harington"]
    assert all(re.search(r" per_\S+$", line) for line in lines), lines
    assert "more: --cursor" not in result.stdout


@pytest.mark.realmodel
def test_persons_list_json(cli: Cli, gallery: Gallery) -> None:
    page = persons_page(cli, gallery)
    assert page["next_cursor"] is None
    persons = page["persons"]
    assert {p["external_id"] for p in persons} == PEOPLE
    for p in persons:
        assert {"id", "external_id", "name", "groups", "metadata"} <= set(p)
        assert p["id"].startswith("per_")
        assert p["name"] == p["external_id"].replace("_", " ")
        assert p["metadata"] == {}
        assert p["groups"] == persons[0]["groups"] and len(p["groups"]) == 1
    assert len({p["id"] for p in persons}) == len(PEOPLE)


@pytest.mark.realmodel
def test_persons_list_pages_with_limit_and_cursor(cli: Cli, gallery: Gallery) -> None:
    text = cli("persons", "list", "-c", COLLECTION, "--limit", "2", "--data-dir", gallery.data)
    assert text.exit_code == 0, text.output
    *rows, more = text.stdout.splitlines()
    assert len(rows) == 2
    assert re.fullmatch(r"more: --cursor \S+", more), more

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(len(PEOPLE) + 1):
        page = persons_page(cli, gallery, "--limit", "2", *(["--cursor", cursor] if cursor else []))
        seen += [p["external_id"] for p in page["persons"]]
        sizes.append(len(page["persons"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen[:2] == [row.split()[0] for row in rows]  # the text page is the first JSON page
    assert sorted(seen) == sorted(PEOPLE)  # every person once
    assert seen == [p["external_id"] for p in persons_page(cli, gallery)["persons"]]  # same order


@pytest.mark.realmodel
def test_persons_list_group(cli: Cli, gallery: Gallery) -> None:
    group = persons_page(cli, gallery)["persons"][0]["groups"][0]
    everyone = persons_page(cli, gallery, "--group", group)
    assert {p["external_id"] for p in everyone["persons"]} == PEOPLE
    nobody = persons_page(cli, gallery, "--group", "no_such_group")
    assert nobody == {"persons": [], "next_cursor": None}
    text = cli("persons", "list", "-c", COLLECTION, "--group", "no_such_group", "--data-dir", gallery.data)
    assert text.exit_code == 0 and text.stdout == ""


# --- identify -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranked(cli: Cli, gallery: Gallery, faces_dir: Path) -> dict[str, Any]:
    """`identify probes/obama1.jpg --top-k 3 --threshold 0 --json` on the gallery."""
    probe = faces_dir / "probes" / "obama1.jpg"
    args = ["--top-k", "3", "--threshold", "0", "--json", "--data-dir", str(gallery.data)]
    result = cli("identify", probe, "-c", COLLECTION, *args)
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


@pytest.mark.realmodel
def test_identify_names_obama(cli: Cli, gallery: Gallery, faces_dir: Path) -> None:
    result = cli(
        "identify", faces_dir / "probes" / "obama1.jpg", "-c", COLLECTION, "--data-dir", gallery.data
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines  # --top-k defaults to 1
    odds = r"  \(1 in [\d,]+ chance a stranger scores this high here\)"  # what the match is worth here
    match = re.fullmatch(r"1\. obama \(obama\)  similarity (\d\.\d{3})" + odds, lines[0])
    assert match is not None, lines[0]
    assert float(match.group(1)) > 0.9


@pytest.mark.realmodel
def test_identify_json_top_k(ranked: dict[str, Any]) -> None:
    assert {"matches", "threshold", "searched", "query_time_ms", "timings"} <= set(ranked)
    assert ranked["threshold"] == 0.0 and ranked["searched"] == N_PHOTOS
    assert ranked["query_time_ms"] > 0 and isinstance(ranked["timings"], dict)
    matches = ranked["matches"]
    assert [m["rank"] for m in matches] == [1, 2, 3]
    for m in matches:
        assert {"rank", "similarity", "distance", "person_id", "external_id", "name", "face_id"} <= set(m)
        assert m["person_id"].startswith("per_") and m["face_id"].startswith("fac_")
        assert m["external_id"] in PEOPLE and m["name"] == m["external_id"].replace("_", " ")
        assert 0 <= m["similarity"] <= 1 and m["distance"] >= 0
    assert len({m["person_id"] for m in matches}) == 3  # one match per person
    assert matches[0]["external_id"] == "obama"
    sims = [m["similarity"] for m in matches]
    assert sims == sorted(sims, reverse=True) and sims[0] > sims[1]
    dists = [m["distance"] for m in matches]
    assert dists == sorted(dists)


@pytest.mark.realmodel
def test_identify_threshold_above_the_best_match(cli: Cli, gallery: Gallery, faces_dir: Path) -> None:
    # A stranger's photo: its best match is well under 1 (the default pack reads a genuine match
    # of obama1.jpg as 1.0, the top of the scale), so a threshold between it and 1 exists.
    stranger = sorted((faces_dir / "lfw" / "Aaron_Guiel").glob("*.jpg"))[0]
    args = ["--top-k", "1", "--threshold", "0", "--json", "--data-dir", str(gallery.data)]
    loose = cli("identify", stranger, "-c", COLLECTION, *args)
    assert loose.exit_code == 0, loose.output
    best = json.loads(loose.stdout)["matches"][0]["similarity"]
    assert best < 1
    threshold = round(best + (1 - best) / 2, 6)
    result = cli(
        "identify",
        stranger,
        "-c",
        COLLECTION,
        "--top-k",
        "5",
        "--threshold",
        str(threshold),
        "--data-dir",
        gallery.data,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"Unknown: nobody among {N_PHOTOS} faces passes similarity >= {threshold:.3f} "
        "(threshold, set by the request)."
    )


@pytest.mark.realmodel
def test_identify_photo_without_a_face(cli: Cli, gallery: Gallery, faces_dir: Path) -> None:
    photo = faces_dir / "noface" / "dlib_dogs.jpg"
    result = cli("identify", photo, "-c", COLLECTION, "--json", "--data-dir", gallery.data)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error FACE_NOT_DETECTED: ")
    assert result.stdout == ""
    assert "Traceback" not in result.output


@pytest.mark.realmodel
def test_identify_all_names_both_and_states_the_rule(cli: Cli, gallery: Gallery, faces_dir: Path) -> None:
    photo = faces_dir / "groups" / "fr_two_people.jpg"
    result = cli("identify-all", photo, "-c", COLLECTION, "--data-dir", gallery.data)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("2 faces, 2 recognised; cut-off similarity >= ")
    assert "(max false-positive rate 0.01, set by the collection) among 9 faces" in out
    assert "(obama)" in out and "(biden)" in out and "chance a stranger scores this high here" in out
    js = cli("identify-all", photo, "-c", COLLECTION, "--json", "--data-dir", gallery.data)
    data = json.loads(js.stdout)
    assert data["threshold_rule"] == {
        "kind": "max_false_positive_rate",
        "value": 0.01,
        "set_by": "collection",
    }
    assert sorted(f["matches"][0]["external_id"] for f in data["faces"]) == ["biden", "obama"]
    assert all(f["matches"][0]["expected_false_matches"] < 0.01 for f in data["faces"])


@pytest.mark.realmodel
def test_a_stranger_is_unknown_on_default_settings(cli: Cli, gallery: Gallery, faces_dir: Path) -> None:
    lfw = faces_dir / "lfw"
    stranger = sorted(p for d in sorted(lfw.iterdir()) if d.is_dir() for p in sorted(d.glob("*.jpg")))[0]
    result = cli("identify", stranger, "-c", COLLECTION, "--data-dir", gallery.data)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Unknown: nobody among {N_PHOTOS} faces passes similarity >= ")
    assert result.stdout.strip().endswith("(max false-positive rate 0.01, set by the collection).")
    known = cli(
        "identify", faces_dir / "probes" / "obama1.jpg", "-c", COLLECTION,
        "--max-false-positive-rate", "0.001", "--data-dir", gallery.data,
    )  # fmt: skip
    assert known.exit_code == 0 and known.stdout.startswith("1. obama (obama)"), known.output


@pytest.mark.realmodel
@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_a_summary_and_the_next_run_resumes(
    faces_dir: Path, tmp_path: Path
) -> None:
    """#20.3: SIGINT (Ctrl-C) finishes the photos in flight, prints the summary, exits 130, no
    traceback from the workers; the same command then enrols the rest."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    photos = tmp_path / "photos"
    # Enough photos that enrolment is still running when Ctrl-C comes (the retina pack enrols
    # 78 photos in about 2 s).
    people = sorted(p for p in (faces_dir / "lfw").iterdir() if p.is_dir())[:400]
    for person in people:
        (photos / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            shutil.copyfile(photo, photos / person.name / photo.name)
    total = sum(1 for _ in photos.rglob("*.jpg"))
    data = tmp_path / "data"
    exe = [str(Path(sys.executable).parent / "facesearch")]
    env = {**os.environ, "FACESEARCH_WORKERS": "2"}
    subprocess.run([*exe, "collections", "create", "lfw", "--data-dir", str(data)], check=True, env=env)
    run = subprocess.Popen(
        [*exe, "enroll", str(photos), "-c", "lfw", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,  # Ctrl-C reaches the process group: the command and its workers
        # As from a terminal: a background job of a non-interactive shell (how CI may run this
        # suite) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    faces = 0
    while faces < 3 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
        with sqlite3.connect(data / "facesearch.db") as db:
            faces = db.execute("SELECT count(*) FROM faces").fetchone()[0]
    os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=120)
    text = out.decode() + err.decode()
    assert run.returncode == 130, text
    assert "interrupted: stopped after the photos in flight" in text and "Traceback" not in text
    first = summary_of(text)
    assert 0 < first[0] < total
    again = subprocess.run(
        [*exe, "enroll", str(photos), "-c", "lfw", "--data-dir", str(data)], capture_output=True, env=env
    )
    assert again.returncode == 0, again.stderr.decode()
    enrolled, skipped, refused = summary_of(again.stdout.decode())
    assert skipped == first[0] and enrolled + skipped + refused == total
    as_json = subprocess.run(
        [*exe, "enroll", str(photos), "-c", "lfw", "--json", "--data-dir", str(data)],
        capture_output=True,
        env=env,
    )
    report = json.loads(as_json.stdout)  # only JSON on stdout: the progress bar is on stderr
    assert report["enrolled"] == 0 and report["already_enrolled"] == skipped + enrolled
    assert len(report["refused"]) == refused and report["interrupted"] is False


def summary_of(text: str) -> tuple[int, int, int]:
    match = SUMMARY.search(text)
    assert match is not None, text
    enrolled, skipped, refused = (int(g) for g in match.groups())
    return enrolled, skipped, refused
