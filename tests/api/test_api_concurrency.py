"""8 client threads enrolling and identifying at once against one real uvicorn server (fake pack).

Nothing fails, and afterwards every acknowledged enrolment is found by identify.
FACESEARCH_CONCURRENCY_SECONDS changes the 30 s run time.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from apihelpers import ServerProcess, free_port, key_from_output

from fakes import person_photo

THREADS = 8
SECONDS = float(os.environ.get("FACESEARCH_CONCURRENCY_SECONDS", "30"))
LAUNCHER = Path(__file__).resolve().parent / "fake_server.py"


def identity(n: int) -> tuple[int, int]:
    """A distinct fake identity per enrolment number."""
    return n % 250 + 1, n // 250 + 1


def identify(http: httpx.Client, n: int) -> str | None:
    r = http.post("/v1/collections/crowd/identify", files={"image": ("q.png", person_photo(*identity(n), 1))})
    r.raise_for_status()
    matches = r.json()["data"]["matches"]
    return str(matches[0]["external_id"]) if matches else None


@pytest.mark.integration
def test_concurrent_enrol_and_identify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    server = ServerProcess([sys.executable, str(LAUNCHER), str(tmp_path / "data"), str(port)], tmp_path, port)
    try:
        server.wait_ready(60)
        headers = {"X-API-Key": key_from_output(server.stdout(), "ADMIN_KEY")}
        httpx.post(server.url + "/v1/collections", json={"name": "crowd"}, headers=headers).raise_for_status()

        numbers = itertools.count()
        acked: list[int] = []
        errors: list[str] = []
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + SECONDS

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    try:
                        if rng.random() < 0.5 or not acked:
                            n = next(numbers)
                            r = http.post(
                                "/v1/collections/crowd/persons",
                                files={"images": ("p.png", person_photo(*identity(n)))},
                                data={"external_id": f"p{n}"},
                            )
                            r.raise_for_status()
                            with lock:
                                acked.append(n)
                        else:
                            with lock:
                                n = rng.choice(acked)
                            found = identify(http, n)
                            if found != f"p{n}":
                                with lock:
                                    errors.append(f"identify p{n} gave {found}")
                    except httpx.HTTPError as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started

        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            with ThreadPoolExecutor(THREADS) as pool:
                found = list(pool.map(lambda n: (n, identify(http, n)), acked))
            missing = [n for n, ext in found if ext != f"p{n}"]
            count = http.get("/v1/collections/crowd").json()["data"]["person_count"]
        with capsys.disabled():
            print(
                f"\nconcurrency: {THREADS} threads for {elapsed:.0f} s: {len(latencies)} requests "
                f"({len(latencies) / elapsed:.0f}/s), {len(errors)} errors, "
                f"{len(acked)} enrolments acknowledged, "
                f"latency p50 {statistics.median(latencies):.1f} ms, "
                f"p95 {statistics.quantiles(latencies, n=20)[-1]:.1f} ms; "
                f"{len(acked) - len(missing)}/{len(acked)} found afterwards"
            )
        assert not errors, errors[:10]
        assert len(acked) > 50 and count == len(acked)
        assert not missing, missing[:10]
    finally:
        server.stop()
    assert "Traceback" not in server.stderr(), server.stderr()[-3000:]
