"""Nothing acknowledged is lost: SIGKILL in the middle of a bulk enrolment, then restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bulk_enrol_worker import colour

from facesearch.config import Settings
from facesearch.service import FaceSearch
from fakes import fake_pack, person_photo

WORKER = Path(__file__).with_name("bulk_enrol_worker.py")
#: These tests run a third time with Milvus as the index (conftest.py, `database_url`).
MILVUS = True


@pytest.mark.integration
def test_sigkill_during_bulk_enrolment_loses_nothing_acknowledged(
    tmp_path: Path, database_url: str | None
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if database_url is not None:
        env["FACESEARCH_DATABASE_URL"] = database_url  # the worker's Settings read it
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path), "100000", "25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while len(acked) < 60 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("ACK "):
            acked.append(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 60, proc.stderr.read() if proc.stderr else ""

    started = time.perf_counter()
    settings = Settings(data_dir=tmp_path, default_pack="fake", database_url=database_url)
    svc = FaceSearch(settings, packs={"fake": fake_pack()})
    recovered_ms = (time.perf_counter() - started) * 1000
    try:
        persons = []
        cursor = None
        while True:
            page, cursor = svc.list_persons("bulk", limit=1000, cursor=cursor)
            persons.extend(page)
            if cursor is None:
                break
        in_sql = {p.external_id for p in persons}
        sql_faces = svc.store.face_count("bulk")
        pk = svc.store.collection_pk("bulk")
        print(
            f"acknowledged {len(acked)}, committed {len(in_sql)} persons / {sql_faces} faces, "
            f"index {svc.index.count(pk)} faces, restart with replay {recovered_ms:.0f} ms"
        )
        assert set(acked) <= in_sql  # every acknowledged enrolment is in SQL
        assert len(in_sql) <= len(acked) + 1  # at most the one in flight committed unacknowledged
        assert svc.index.count(pk) == sql_faces == len(in_sql)  # the index holds what SQL holds
        for p in persons:  # ... and each of them is found, so it holds nothing SQL lacks
            i = int(p.external_id[1:])
            match = svc.identify("bulk", person_photo(*colour(i)), search_mode="accurate").matches
            assert match and match[0].person.external_id == p.external_id
    finally:
        svc.close()
