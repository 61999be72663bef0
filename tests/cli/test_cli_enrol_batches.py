"""`facesearch enroll`'s loop (`_Enrolment`) against a fake service: photos analysed in threads,
written in batches of at most BATCH, skips, refusals at analysis and at write, persons with no
photo enrolled, and a slow photo not holding back the batch before it (BATCH_WAIT_S)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from facesearch.cli import service as cli_service
from facesearch.cli.service import EnrolReport, _Enrolment, _Photo
from facesearch.errors import FaceLimitReached, NoFaceDetected


class FakeService:
    """Analyses a photo by its bytes: b"noface" is refused, b"slow" takes 0.6 s; writes record
    each batch, and refuse the faces named in ``limit``."""

    def __init__(self, known: dict[str, set[str]] | None = None, limit: frozenset[str] = frozenset()) -> None:
        self.settings = SimpleNamespace(max_upload_bytes=1 << 20)
        self.known = known or {}
        self.limit = limit
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def photo_hashes(self, collection: Any, external_id: str) -> set[str] | None:
        return self.known.get(external_id)

    def analyse_photo(self, collection: Any, data: bytes) -> Any:
        if data == b"noface":
            raise NoFaceDetected("no face in the photo")
        if data == b"slow":
            time.sleep(0.6)
        return SimpleNamespace(tag=data.decode())

    def enroll_faces(self, collection: Any, items: list[Any]) -> list[Any]:
        with self.lock:
            self.batches.append([i.face.tag for i in items])
        return [FaceLimitReached("full") if i.face.tag in self.limit else object() for i in items]


def photos(tmp_path: Path, spec: dict[str, list[bytes]]) -> list[_Photo]:
    out = []
    for person, contents in spec.items():
        (tmp_path / person).mkdir()
        for n, data in enumerate(contents):
            path = tmp_path / person / f"{n}.jpg"
            path.write_bytes(data)
            out.append(_Photo(person, path))
    return out


def run(svc: FakeService, todo: list[_Photo]) -> tuple[EnrolReport, int]:
    report = EnrolReport()
    ticks: list[int] = []
    _Enrolment(svc, object(), report, lambda: ticks.append(1), threads=2).run(todo)
    return report, len(ticks)


def test_photos_are_written_in_batches_of_at_most_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_service, "BATCH", 4)
    todo = photos(tmp_path, {f"p{i}": [f"p{i}-{j}".encode() for j in range(3)] for i in range(3)})
    svc = FakeService()
    report, ticks = run(svc, todo)
    assert [len(b) for b in svc.batches] == [4, 4, 1]
    assert sorted(t for b in svc.batches for t in b) == sorted(p.path.read_text() for p in todo)
    assert (report.enrolled, report.skipped, report.refused, ticks) == (9, 0, [], 9)


def test_skips_refusals_and_persons_with_nothing_enrolled(tmp_path: Path) -> None:
    import hashlib

    todo = photos(
        tmp_path,
        {"ann": [b"a1", b"a2"], "bob": [b"noface"], "cy": [b"c1", b"noface"], "dee": [b"noface"]},
    )
    known = {"ann": {hashlib.sha256(b"a1").hexdigest()}, "dee": set()}  # dee exists, no photo of these
    svc = FakeService(known, limit=frozenset({"c1"}))
    report, ticks = run(svc, todo)
    assert report.skipped == 1 and report.enrolled == 1  # a1 was enrolled before; a2 now
    assert sorted((Path(p).parent.name, code) for p, code, _ in report.refused) == [
        ("bob", "FACE_NOT_DETECTED"),
        ("cy", "FACE_LIMIT_REACHED"),  # refused when written
        ("cy", "FACE_NOT_DETECTED"),
        ("dee", "FACE_NOT_DETECTED"),
    ]
    assert sorted(report.not_enrolled) == ["bob", "cy"]  # dee existed already
    assert ticks == len(todo)


def test_a_slow_photo_does_not_hold_back_the_batch_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_service, "BATCH_WAIT_S", 0.2)
    todo = photos(tmp_path, {"ann": [b"a1", b"a2", b"a3"], "bob": [b"slow"], "cy": [b"c1"]})
    svc = FakeService()
    report, _ = run(svc, todo)
    # a1..a3 are committed while the slow photo is still being analysed.
    assert svc.batches[0] == ["a1", "a2", "a3"] and report.enrolled == 5
