"""#16.2 and #16.3: two `facesearch serve` processes on one PostgreSQL (then also on one Milvus): a
face enrolled through one is found through the other, a delete is honoured by both, and the first
admin key is created once.

Each server keeps its own in-memory index current by replaying the change log before every
search (``IndexFollower.sync``), so the delay is "by the next search"; this test measures it.
On Milvus the index is shared: the first server to search after a change applies it (under the
database's index lock) and each waits until it is visible (Milvus's time tick, ~0.2 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from apihelpers import ServerProcess, free_port
from test_api_server import serve_cmd

import facesearch
from embedworker import need_models
from milvusutil import emptied_after
from pgutil import fresh_schema, need_postgres

pytestmark = [pytest.mark.integration, pytest.mark.realmodel]


@pytest.fixture(params=["memory", pytest.param("milvus", marks=pytest.mark.milvus)])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two servers on one PostgreSQL, each with its own in-process index, then both on one Milvus."""
    need_models()
    from embedworker import REPO

    with ExitStack() as stack:
        url = stack.enter_context(fresh_schema(need_postgres()))
        env = {"FACESEARCH_DATABASE_URL": url, "FACESEARCH_MODELS_DIR": str(REPO / "data" / "models")}
        if request.param == "milvus":
            milvus = request.getfixturevalue("milvus_session_url")
            env["FACESEARCH_INDEX_URL"] = stack.enter_context(emptied_after(milvus))
        started = []
        try:
            for name in ("a", "b"):
                folder = tmp_path / name
                folder.mkdir()
                port = free_port()
                started.append(ServerProcess(serve_cmd(folder / "data", port, 1), folder, port, env=env))
            for server in started:
                server.wait_ready(120)
            yield started[0], started[1]
        finally:
            for server in started:
                server.stop()


def test_two_servers_one_truth(
    servers: tuple[ServerProcess, ServerProcess], tmp_path: Path, faces_dir: Path
) -> None:
    a, b = servers
    keys = [p for p in tmp_path.glob("*/data/admin-key.txt")]
    assert len(keys) == 1  # one first admin key for the shared database, whichever server made it
    key = keys[0].read_text().strip()
    probe = faces_dir / "probes" / "obama1.jpg"
    with facesearch.Client(a.url, key) as on_a, facesearch.Client(b.url, key) as on_b:
        on_a.create_collection("staff")
        t0 = time.perf_counter()
        person = on_a.create_person(
            "staff", external_id="obama", images=[faces_dir / "people" / "obama" / "obama.jpg"]
        )
        found = on_b.identify("staff", probe)["matches"]
        seen_ms = (time.perf_counter() - t0) * 1000
        assert [m["person_id"] for m in found] == [person["id"]]  # read on the other server at once
        assert on_a.identify("staff", probe)["matches"]  # read-your-writes on the writer
        on_b.delete_person("staff", person["id"])
        assert on_a.identify("staff", probe)["matches"] == []  # the delete is honoured by both
        assert on_b.identify("staff", probe)["matches"] == []
        # Once the index exists (the first enrolment above created it): the steady-state delay.
        t1 = time.perf_counter()
        again = on_a.create_person(
            "staff", external_id="obama-2", images=[faces_dir / "people" / "obama" / "obama.jpg"]
        )
        enrol_ms = (time.perf_counter() - t1) * 1000
        assert [m["person_id"] for m in on_b.identify("staff", probe)["matches"]] == [again["id"]]
        steady_ms = (time.perf_counter() - t1) * 1000
    print(
        f"enrolled on A, found on B: {seen_ms:.0f} ms from the first enrolment call to B's answer "
        f"(index created on the way), then {steady_ms:.0f} ms ({enrol_ms:.0f} ms of it the enrolment)"
    )
