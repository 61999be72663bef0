"""Backup and restore: export, wipe, import, the same answers; damaged archives change nothing."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from facesearch.archive import export_collection, import_archive, read_manifest
from facesearch.config import Settings
from facesearch.errors import Conflict, NotFound, ValidationError
from facesearch.service import FaceSearch
from fakes import fake_pack, person_photo

PEOPLE = [(10 + 20 * i, 20 + 20 * i) for i in range(6)]


def _service(folder: Path, database_url: str | None = None) -> FaceSearch:
    return FaceSearch(
        Settings(data_dir=folder, default_pack="fake", database_url=database_url), packs={"fake": fake_pack()}
    )


def _answers(svc: FaceSearch, coll: str) -> list[tuple[list[tuple[str, float]], int, int]]:
    out = []
    for r, g in PEOPLE + [(200, 210)]:
        res = svc.identify(coll, person_photo(r, g, 5), top_k=3, threshold=0.0)
        out.append(
            ([(m.person.external_id, m.similarity) for m in res.matches], len(res.ambiguous), res.vetoed)
        )
    return out


@pytest.fixture
def svc(tmp_path: Path, database_url: str | None) -> FaceSearch:
    service = _service(tmp_path / "a", database_url)
    service.create_collection("staff", settings={"remember_unknown": True, "max_false_positive_rate": 0.05})
    for i, (r, g) in enumerate(PEOPLE):
        photos = [person_photo(r, g, b) for b in (0, 3)]
        meta = {"i": i}
        service.create_person(
            "staff", external_id=f"p{i}", name=f"P {i}", metadata=meta, groups=[f"g{i % 2}"], images=photos
        )
    service.add_negative("staff", "p0", image=person_photo(*PEOPLE[1], 9))
    service.set_different("staff", "p2", "p3")
    dup = service.create_person("staff", external_id="dup", images=[person_photo(150, 160)])
    service.merge_persons("staff", "p4", dup.id)
    yield service
    service.close()


def test_export_wipe_import_gives_the_same_answers(svc: FaceSearch, tmp_path: Path) -> None:
    before = _answers(svc, "staff")
    coll = svc.get_collection("staff")
    out = tmp_path / "staff.tar.gz"
    manifest = export_collection(svc.store, "staff", out)
    assert manifest["counts"] == {"groups": 2, "persons": 6, "faces": 13, "negatives": 1, "distincts": 1,
                                  "redirects": 1, "sources": 0}  # fmt: skip
    assert (
        manifest["pack"]["name"] == "fake" and manifest["collection"]["settings"]["remember_unknown"] is True
    )
    assert read_manifest(out)["files"]["faces.jsonl"]["bytes"] > 0
    svc.delete_collection("staff")  # the wipe
    restored = import_archive(svc.store, out)
    svc.sync()
    assert (restored.id, restored.name) == (coll.id, "staff")
    again = svc.get_collection("staff")
    assert (again.person_count, again.face_count, again.settings) == (6, 13, coll.settings)
    assert _answers(svc, "staff") == before  # same persons, same similarities, same corrections
    with pytest.raises(NotFound) as err:
        svc.get_person("staff", manifest_redirect(out))
    assert err.value.details["merged_into"] == svc.get_person("staff", "p4").id
    assert svc.get_person("staff", "p1").metadata == {"i": 1} and svc.get_person("staff", "p1").groups == (
        "g1",
    )
    with pytest.raises(Conflict):
        import_archive(svc.store, out)  # the name is taken
    with pytest.raises(Conflict):
        import_archive(svc.store, out, name="copy")  # the ids are taken
    copy = import_archive(svc.store, out, name="copy", keep_ids=False)
    svc.sync()
    assert copy.id != coll.id and _answers(svc, "copy") == before


def manifest_redirect(path: Path) -> str:
    with tarfile.open(path, "r:*") as tar:
        fh = tar.extractfile("redirects.jsonl")
        assert fh is not None
        return str(json.loads(fh.readline())["id"])


def test_an_archive_restores_on_another_server(svc: FaceSearch, tmp_path: Path) -> None:
    out = tmp_path / "staff.tar"
    export_collection(svc.store, "staff", out)
    other = _service(tmp_path / "other")
    try:
        import_archive(other.store, out)
        other.sync()
        assert _answers(other, "staff") == _answers(svc, "staff")
    finally:
        other.close()


def _rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    with tarfile.open(src, "r:*") as tin, tarfile.open(dst, "w") as tout:
        for info in tin:
            data = change.get(info.name, tin.extractfile(info).read())  # type: ignore[union-attr]
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def test_a_damaged_or_foreign_archive_imports_nothing(svc: FaceSearch, tmp_path: Path) -> None:
    out = tmp_path / "staff.tar"
    export_collection(svc.store, "staff", out)
    with tarfile.open(out) as tar:
        faces = tar.extractfile("faces.jsonl").read()  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    damaged = tmp_path / "damaged.tar"
    _rewrite(out, damaged, {"faces.jsonl": faces.replace(b'"p', b'"q', 1)})  # a key renamed
    malformed = tmp_path / "malformed.tar"
    manifest_fixed = dict(manifest, files=dict(manifest["files"]))
    import hashlib

    bad_faces = faces.replace(b'"p', b'"q', 1)
    manifest_fixed["files"]["faces.jsonl"] = {
        "sha256": hashlib.sha256(bad_faces).hexdigest(),
        "bytes": len(bad_faces),
    }
    _rewrite(out, malformed, {"faces.jsonl": bad_faces, "manifest.json": json.dumps(manifest_fixed).encode()})
    with pytest.raises(ValidationError, match="malformed"):
        import_archive(svc.store, malformed, name="restored", keep_ids=False)
    with pytest.raises(ValidationError, match="checksum"):
        import_archive(svc.store, damaged, name="restored", keep_ids=False)
    with pytest.raises(NotFound):
        svc.get_collection("restored")  # nothing half-written
    foreign = tmp_path / "foreign.tar"
    manifest["pack"]["calibration_sha256"] = "0" * 64
    _rewrite(out, foreign, {"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(ValidationError, match="pack"):
        import_archive(svc.store, foreign, name="restored", keep_ids=False)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    with pytest.raises(ValidationError):
        import_archive(svc.store, tmp_path / "junk.tar")


def test_export_is_one_consistent_snapshot_while_enrolling(svc: FaceSearch, tmp_path: Path) -> None:
    stop = threading.Event()

    def enrol() -> None:
        i = 0
        while not stop.is_set():
            svc.create_person("staff", external_id=f"busy{i}", images=[person_photo(100 + i % 100, 7, 0)])
            i += 1

    worker = threading.Thread(target=enrol)
    worker.start()
    try:
        out = tmp_path / "live.tar"
        manifest = export_collection(svc.store, "staff", out)
    finally:
        stop.set()
        worker.join()
    with tarfile.open(out) as tar:
        persons = {json.loads(x)["id"] for x in tar.extractfile("persons.jsonl")}  # type: ignore[union-attr]
        faces = [json.loads(x) for x in tar.extractfile("faces.jsonl")]  # type: ignore[union-attr]
    assert len(persons) == manifest["counts"]["persons"] and len(faces) == manifest["counts"]["faces"]
    assert all(f["person_id"] in persons for f in faces)  # no face of a person the snapshot lacks
