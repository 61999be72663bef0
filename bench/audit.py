"""What the audit log costs a search (bench, not a test).

Usage: python bench/audit.py [--requests 300] [--faces 1000]

A live server (uvicorn in a thread, the deterministic fake pack so that model time does not hide
the difference, SQLite in a fresh folder) with a collection of ``--faces`` faces; identify over
HTTP, one client, alternating requests with the audit log on and off (the middleware's audited
methods emptied), so background load hits both alike. Prints the median and p90 of each, their
ratio, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "api")]

from apihelpers import fake_app, new_key, thread_server  # noqa: E402

from facesearch.api import audit  # noqa: E402
from fakes import person_photo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--faces", type=int, default=1000)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        app = fake_app(Path(tmp))
        svc = app.state.service
        svc.create_collection("staff")
        for i in range(args.faces):
            photo_i = person_photo(i % 250 + 1, i // 250 + 1, 0)
            svc.create_person("staff", external_id=f"p{i}", images=[photo_i])
        key = new_key(app, "reader")
        photo = person_photo(11, 1, 3)
        times: dict[bool, list[float]] = {True: [], False: []}
        audited = audit.AUDITED_METHODS
        with thread_server(app) as url, httpx.Client(base_url=url, headers={"X-API-Key": key}) as client:
            for i in range(args.requests * 2 + 20):
                on = i % 2 == 0
                audit.AUDITED_METHODS = audited if on else frozenset()
                t0 = time.perf_counter()
                r = client.post("/v1/collections/staff/identify", files={"image": ("p.png", photo)})
                took = (time.perf_counter() - t0) * 1000
                assert r.status_code == 200, r.text
                if i >= 20:  # warm-up left out
                    times[on].append(took)
        audit.AUDITED_METHODS = audited
        entries = svc.store.list_audit(operation="identify", limit=1000)[0]
    on, off = statistics.median(times[True]), statistics.median(times[False])
    p90 = {k: statistics.quantiles(v, n=10)[-1] for k, v in times.items()}
    print(f"identify over HTTP, {args.faces} faces, {args.requests} requests each, fake pack, SQLite:")
    print(f"  audit on:  p50 {on:.2f} ms, p90 {p90[True]:.2f} ms ({len(entries)} entries written)")
    print(f"  audit off: p50 {off:.2f} ms, p90 {p90[False]:.2f} ms")
    print(f"  ratio on/off (p50): {on / off:.3f}  (+{on - off:.2f} ms)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
