"""Check-then-write rules hold under concurrency (#15 point 5), with real parallel HTTP requests.

Before: with max_faces_per_person=2, 6 parallel add-face calls stored 6 faces; the same photo sent
6 times at once stored 2 copies; 6 parallel enroll_if_unknown with one unknown face made 2 persons.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from apihelpers import fake_app, new_key, thread_server

from fakes import person_photo

pytestmark = pytest.mark.integration

ALICE, STRANGER = (10, 20), (90, 91)
N = 6


def at_once(call: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """``call(i)`` for i in 0..N-1 from N threads released together."""
    start = threading.Barrier(N)
    out: list[httpx.Response | None] = [None] * N

    def run(i: int) -> None:
        start.wait()
        out[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in out)
    return [r for r in out if r is not None]


@pytest.fixture
def server(tmp_path: Path, database_url: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    """On SQLite and on PostgreSQL (where write transactions serialise on an advisory lock)."""
    app = fake_app(tmp_path, **({"database_url": database_url} if database_url else {}))
    headers = {"X-API-Key": new_key(app, "admin")}
    with thread_server(app) as url:
        made = httpx.post(
            f"{url}/v1/collections",
            headers=headers,
            json={"name": "staff", "settings": {"max_faces_per_person": 2}},
        )
        assert made.status_code == 201, made.text
        yield url, headers


def test_the_face_limit_holds_for_parallel_adds(server: tuple[str, dict[str, str]]) -> None:
    url, h = server
    alice = httpx.post(f"{url}/v1/collections/staff/persons", headers=h, json={"external_id": "alice"}).json()
    path = f"{url}/v1/collections/staff/persons/{alice['data']['id']}/faces"
    results = at_once(
        lambda i: httpx.post(
            path, headers=h, files={"image": ("a.png", person_photo(*ALICE, i), "image/png")}, timeout=60
        )
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 201] + [409] * (N - 2), [r.text[:120] for r in results]
    refused = [r.json()["error"] for r in results if r.status_code == 409]
    assert {e["code"] for e in refused} == {"FACE_LIMIT_REACHED"}  # its own reason, not VALIDATION_ERROR
    assert all(e["details"]["max_faces_per_person"] == 2 for e in refused)
    person = httpx.get(f"{url}/v1/collections/staff/persons/{alice['data']['id']}", headers=h)
    assert len(person.json()["data"]["faces"]) == 2


def test_the_same_photo_sent_at_once_is_stored_once(server: tuple[str, dict[str, str]]) -> None:
    url, h = server
    bob = httpx.post(f"{url}/v1/collections/staff/persons", headers=h, json={"external_id": "bob"}).json()
    path = f"{url}/v1/collections/staff/persons/{bob['data']['id']}/faces"
    photo = person_photo(30, 40, 1)
    results = at_once(
        lambda i: httpx.post(path, headers=h, files={"image": ("b.png", photo, "image/png")}, timeout=60)
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * (N - 1), [r.text[:120] for r in results]
    faces = httpx.get(f"{url}/v1/collections/staff/persons/{bob['data']['id']}", headers=h).json()
    assert len(faces["data"]["faces"]) == 1


def unknown_at_once(urls: tuple[str, ...], headers: dict[str, str]) -> list[httpx.Response]:
    """N identify calls with enroll_if_unknown for one stranger, spread over ``urls``; each must
    answer 200 and exactly one of them creates the person."""
    results = at_once(
        lambda i: httpx.post(
            f"{urls[i % len(urls)]}/v1/collections/staff/identify",
            headers=headers,
            data={"enroll_if_unknown": "true", "name": "newcomer"},
            files={"image": ("s.png", person_photo(*STRANGER, i % 3), "image/png")},
            timeout=60,
        )
    )
    assert all(r.status_code == 200 for r in results), [r.text[:120] for r in results]
    created = [r.json()["data"]["created_person_id"] for r in results]
    assert sum(c is not None for c in created) == 1, created
    return results


def test_one_unknown_face_sent_at_once_makes_one_person(server: tuple[str, dict[str, str]]) -> None:
    url, h = server
    results = unknown_at_once((url,), h)
    matched = [r.json()["data"]["matches"] for r in results if r.json()["data"]["created_person_id"] is None]
    assert all(m and m[0]["name"] == "newcomer" for m in matched)
    listed = httpx.get(f"{url}/v1/collections/staff/persons", headers=h).json()["data"]["persons"]
    assert [p["name"] for p in listed] == ["newcomer"]


def test_one_unknown_face_sent_to_two_servers_at_once_makes_one_person(
    tmp_path: Path, database_url: str | None
) -> None:
    """Two servers on one database (two data folders and PostgreSQL; on SQLite, one file and two
    services, as the CLI beside a server): the collection lock is the database's, not a process's."""
    extra = {"database_url": database_url} if database_url else {}
    apps = [fake_app(tmp_path / name if database_url else tmp_path, **extra) for name in ("a", "b")]
    headers = {"X-API-Key": new_key(apps[0], "admin")}
    with thread_server(apps[0]) as url_a, thread_server(apps[1]) as url_b:
        made = httpx.post(f"{url_a}/v1/collections", headers=headers, json={"name": "staff"})
        assert made.status_code == 201, made.text
        unknown_at_once((url_a, url_b), headers)
