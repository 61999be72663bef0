"""Sealed face sources and pack migrations while serving, with two fake packs (no models)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from facesearch.config import Settings
from facesearch.errors import Conflict, ValidationError
from facesearch.pipeline import ModelPack
from facesearch.service import FaceSearch
from facesearch.service.sources import SourceSeal, new_key
from facesearch.storage.tables import DbFace, DbFaceSource, DbFaceVector
from fakes import (
    SIM,
    FakeAligner,
    FakeDetector,
    FakeEmbedder,
    FakeQuality,
    colour_embedding,
    face_photo,
    fake_pack,
    person_photo,
)

ALICE, BOB, CARL, DORA = (10, 20), (30, 40), (50, 60), (70, 80)
KEY = new_key()
#: These tests run a third time with Milvus as the index (conftest.py, `database_url`).
MILVUS = True


def _quantise(pixels: np.ndarray) -> np.ndarray:
    """Colours to multiples of 10, dark to black: what JPEG (sources are JPEG) did not keep."""
    q = (np.round(pixels.astype(np.float32) / 10) * 10).clip(0, 250).astype(np.uint8)
    q[q.astype(int).sum(axis=2) < 30] = 0
    return q


class OtherDetector(FakeDetector):
    """The fake detector on quantised colours (it finds faces again in JPEG sources)."""

    def detect(self, image: np.ndarray, *, upsample: int) -> list:  # type: ignore[override]
        return super().detect(_quantise(image), upsample=upsample)


class OtherEmbedder(FakeEmbedder):
    """Another model: 64 values from the quantised colour of the face's centre."""

    dim = 64

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        rows = []
        for chip in chips:
            r, g, _ = (
                int(v) for v in _quantise(np.median(chip[65:85, 65:85], axis=(0, 1))[None, None, :])[0, 0]
            )
            rows.append(colour_embedding(g, r, 0)[:64])
        return np.stack(rows) if rows else np.zeros((0, 64), np.float32)


def packs() -> dict[str, ModelPack]:
    other = ModelPack(
        name="fake2",
        detector=OtherDetector(),
        aligner=FakeAligner(),
        embedder=OtherEmbedder(),
        quality=FakeQuality(),
        similarity=SIM.similarity,
        distance_for_similarity=SIM.distance_for,
        default_threshold=0.5,
    )
    return {"fake": fake_pack(), "fake2": other}


def open_svc(folder: Path, database_url: str | None = None, key: str | None = KEY) -> FaceSearch:
    settings = Settings(data_dir=folder, default_pack="fake", database_url=database_url, source_key=key)
    return FaceSearch(settings, packs=packs())


@pytest.fixture
def svc(tmp_path: Path, database_url: str | None) -> FaceSearch:
    service = open_svc(tmp_path, database_url)
    service.create_collection("staff", settings={"keep_source": True, "default_threshold": 0.5})
    for ext, colour in (("alice", ALICE), ("bob", BOB), ("carl", CARL)):
        service.create_person(
            "staff", external_id=ext, images=[person_photo(*colour, 0), person_photo(*colour, 3)]
        )
    service.add_negative("staff", "alice", image=person_photo(*DORA, 0))
    yield service
    service.close()


def _name(svc: FaceSearch, photo: bytes, **options: object) -> list[str]:
    return [m.person.external_id for m in svc.identify("staff", photo, **options).matches]


def test_sources_are_sealed_beside_each_face(svc: FaceSearch) -> None:
    with svc.store._read() as s:
        sealed = list(s.scalars(select(DbFaceSource.data)))
    assert len(sealed) == 6 and all(b"\xff\xd8" not in x[:32] for x in sealed)  # no JPEG in clear
    crop = SourceSeal(KEY).open(sealed[0])
    assert crop[:2] == b"\xff\xd8"
    with pytest.raises(ValidationError, match="cannot be opened"):
        SourceSeal(new_key()).open(sealed[0])
    with pytest.raises(ValidationError, match="cannot be opened"):
        SourceSeal(KEY).open(sealed[0][:-1] + bytes([sealed[0][-1] ^ 1]))
    with pytest.raises(ValidationError):
        SourceSeal("too short")


def test_faces_added_later_and_in_bulk_keep_their_sources(svc: FaceSearch) -> None:
    from facesearch.storage import PersonFace

    def sealed() -> int:
        with svc.store._read() as s:
            return len(list(s.scalars(select(DbFaceSource.face_id))))

    svc.add_face("staff", "alice", person_photo(*ALICE, 5))  # POST .../faces used to drop it
    assert sealed() == 7
    new = svc.analyse_photo("staff", person_photo(*DORA, 2))
    assert new.source is not None
    done = svc.enroll_faces("staff", [PersonFace("dora", "dora", new)])  # facesearch enroll
    assert done[0] is not None and sealed() == 8
    assert svc.start_migration("staff", "fake2").record.total == 8  # every face can be migrated


def test_keep_source_needs_the_key(tmp_path: Path) -> None:
    svc = open_svc(tmp_path, key=None)
    try:
        svc.create_collection("staff", settings={"keep_source": True})
        with pytest.raises(ValidationError, match="FACESEARCH_SOURCE_KEY"):
            svc.create_person("staff", external_id="a", images=[person_photo(*ALICE)])
        svc.create_collection("plain")
        svc.create_person("plain", external_id="a", images=[person_photo(*ALICE)])  # off by default
    finally:
        svc.close()


def test_a_migration_switches_the_pack_with_the_same_answers(svc: FaceSearch) -> None:
    before = [_name(svc, person_photo(*c, 1)) for c in (ALICE, BOB, CARL, DORA)]
    assert before == [["alice"], ["bob"], ["carl"], []]
    started = svc.start_migration("staff", "fake2")
    assert (started.record.state, started.record.total, started.record.done) == ("running", 6, 0)
    mid = started.record.id
    assert svc.migrations.step(mid, "fake2")  # one batch: every face embedded in the shadow
    assert svc.get_collection("staff").pack == "fake"  # identify still on the old pack
    assert _name(svc, person_photo(*ALICE, 1)) == ["alice"]
    # A person enrolled and a negative recorded during the migration are picked up before the switch.
    svc.create_person("staff", external_id="dora2", images=[person_photo(*DORA, 5)])
    svc.add_negative("staff", "bob", image=person_photo(*CARL, 0))
    seen = []
    stale = svc.collection("staff")  # read before the switch, as a request in flight holds it
    done = svc.migrations.run(mid, progress=seen.append)
    assert [m.person.external_id for m in svc.identify(stale, person_photo(*BOB, 1)).matches] == ["bob"]
    group = face_photo(((*BOB, 1), 10, 10, 80))
    assert [m.person.external_id for f in svc.identify_all(stale, group).faces for m in f.matches] == ["bob"]
    assert done.record.state == "done" and done.record.done == done.record.total == 7 and done.eta_s == 0.0
    assert done.record.result == {
        "faces": 7,
        "faces_dropped": 0,
        "negatives_dropped": 0,
        "unknown_faces_forgotten": 0,
    }
    assert seen and seen[-1].record.state == "done"
    coll = svc.get_collection("staff")
    assert coll.pack == "fake2" and coll.settings["default_threshold"] == 0.5
    with svc.store._read() as s:
        assert set(s.scalars(select(DbFace.dim))) == {64} and not list(
            s.scalars(select(DbFaceVector.face_id))
        )
    after = [_name(svc, person_photo(*c, 1)) for c in (ALICE, BOB, CARL)]
    assert after == [["alice"], ["bob"], ["carl"]]
    assert _name(svc, person_photo(*DORA, 1)) == ["dora2"]
    # The negative was embedded again: Dora's face is still never Alice's.
    assert "alice" not in _name(svc, person_photo(*DORA, 0), threshold=0.0, top_k=4)
    assert [m.record.state for m in svc.list_migrations("staff")] == ["done"]


def test_a_migration_resumes_after_a_restart_and_can_be_cancelled(
    tmp_path: Path, database_url: str | None
) -> None:
    svc = open_svc(tmp_path, database_url)
    svc.create_collection("staff", settings={"keep_source": True})
    for i in range(40):
        svc.create_person(
            "staff", external_id=f"p{i}", images=[person_photo(10 + 10 * (i % 20), 90 + 10 * (i // 20))]
        )
    mid = svc.start_migration("staff", "fake2").record.id
    svc.migrations.step(mid, "fake2")
    assert svc.migration_status("staff", mid).record.done == 16
    svc.close()
    svc = open_svc(tmp_path, database_url)  # the server was restarted
    try:
        with pytest.raises(Conflict):
            svc.start_migration("staff", "fake2")  # one at a time
        assert svc.migration_status("staff", mid).record.done == 16  # kept
        svc.migrations.step(mid, "fake2")
        cancelled = svc.cancel_migration("staff", mid)
        assert cancelled.record.state == "cancelled"
        with svc.store._read() as s:
            assert not list(s.scalars(select(DbFaceVector.face_id)))
        assert svc.get_collection("staff").pack == "fake"
        again = svc.start_migration("staff", "fake2")
        svc.start_background()  # the server's way: the worker thread runs it
        deadline = 200
        while svc.migration_status("staff", again.record.id).record.state == "running" and deadline:
            import time

            time.sleep(0.05)
            deadline -= 1
        assert svc.migration_status("staff", again.record.id).record.state == "done"
        assert _name(svc, person_photo(80, 90, 1)) == ["p7"]
    finally:
        svc.close()


def test_faces_without_a_usable_source_are_listed_never_dropped_silently(
    svc: FaceSearch, tmp_path: Path
) -> None:
    svc.create_collection("old")  # keep_source off: no sources
    svc.create_person("old", external_id="x", images=[person_photo(*ALICE)])
    with pytest.raises(ValidationError) as err:
        svc.start_migration("old", "fake2")
    assert err.value.details["without_source"] == 1
    # A source with no face in it: the migration blocks and lists the face.
    bad = svc.create_person("staff", external_id="blank", images=[person_photo(*DORA, 2)])
    with svc.store._write() as s:
        row = s.scalar(select(DbFaceSource).where(DbFaceSource.face_id == svc.store.face_pk(bad.faces[0].id)))
        row.data = SourceSeal(KEY).seal(face_photo(size=(64, 64)))  # no face at all
    mid = svc.start_migration("staff", "fake2").record.id
    blocked = svc.migrations.run(mid)
    assert blocked.record.state == "blocked" and list(blocked.record.failed) == [bad.faces[0].id]
    assert "FACE_NOT_DETECTED" in blocked.record.failed[bad.faces[0].id]
    assert svc.get_collection("staff").pack == "fake"
    svc.cancel_migration("staff", mid)
    dropping = svc.start_migration("staff", "fake2", drop_unmigratable=True).record.id
    done = svc.migrations.run(dropping)
    assert done.record.state == "done" and done.record.result["faces_dropped"] == 1
    assert [f.id for f in svc.get_person("staff", "blank").faces] == []


def test_an_archive_of_another_pack_with_sources_migrates_on_import(svc: FaceSearch, tmp_path: Path) -> None:
    import io
    import json
    import tarfile

    from facesearch.archive import export_collection, import_archive

    out = tmp_path / "staff.tar"
    manifest = export_collection(svc.store, "staff", out)
    assert manifest["counts"]["sources"] == manifest["counts"]["faces"] == 6
    foreign = tmp_path / "foreign.tar"  # as if made by a server whose pack this one lacks
    manifest["pack"]["calibration_sha256"] = "f" * 64
    with tarfile.open(out) as tin, tarfile.open(foreign, "w") as tout:
        for info in tin:
            data = (
                json.dumps(manifest).encode()
                if info.name == "manifest.json"
                else tin.extractfile(info).read()
            )  # type: ignore[union-attr]
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    with pytest.raises(ValidationError, match="--pack"):
        import_archive(svc.store, foreign, name="moved", keep_ids=False)
    coll = import_archive(
        svc.store, foreign, name="moved", keep_ids=False, migrate=lambda c: svc.start_migration(c.id, "fake2")
    )
    (mig,) = svc.list_migrations(coll.id)
    done = svc.migrations.run(mig.record.id)
    assert done.record.state == "done" and svc.get_collection("moved").pack == "fake2"
    assert [m.person.external_id for m in svc.identify("moved", person_photo(*BOB, 1)).matches] == ["bob"]
