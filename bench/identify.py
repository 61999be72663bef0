"""Identify over HTTP on the default pack, as a user runs it: what one request costs, where it goes.

A fresh data folder, a collection on the default pack (``auto``: ``retina`` when installed),
``--faces`` synthetic unit faces of the pack's dimension filled through the store
(``bulk_fill``), then the 9 photos of ``people/`` enrolled over HTTP (real embeddings), and
``facesearch serve --workers 2`` on it. Probes: ``probes/obama1.jpg`` and
``probes/alex_lacamoire1.jpg`` cropped 4:3 to 640x480 around the face (the crops
``bench/scale.py`` uses), and the full-size camera photos ``probes/obama1.jpg`` (1480x832) and
``groups/fr_obama_and_biden.jpg`` (2000x1428, identify picks its largest face).

Prints, with the load average before and after each table:
- one client, requests interleaved probe by probe (``--requests`` each, at least 400 for a p99):
  p50 / p90 / p99 ms, the server's stage timings (p50), their sum, and the ratio p50 / sum;
- the main process's CPU per request (utime + stime of the server process over the run, divided
  by the requests; the model work runs in the worker processes) and the workers' CPU per request;
- requests/s with 1, 2 and 4 concurrent clients (640x480 probes, ``--seconds`` each);
- resident memory of the server and of its workers.

``--profile OUT`` also samples the server process with py-spy (``pip install py-spy``) during
the one-client run and writes its top frames (``py-spy record --format raw`` collapsed stacks) to
OUT; ``--json OUT`` writes every figure.

    .venv/bin/python bench/identify.py                       # about 2 minutes
    .venv/bin/python bench/identify.py --requests 400 --json /tmp/identify.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import Server, children, rss_bytes  # noqa: E402
from scale_data import probe_photos  # noqa: E402

COLLECTION = "bench"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def fill(data_dir: Path, n: int, seed: int) -> tuple[str, str, int]:
    """The data folder with a default-pack collection of ``n`` synthetic faces; (key, pack, dim)."""
    from facesearch.config import Settings
    from facesearch.pipeline.packs import build_pack, resolve_pack_name
    from facesearch.storage import open_store
    from facesearch.storage.bulk import bulk_fill

    settings = Settings()
    pack = resolve_pack_name("auto", settings.pack_config())
    dim = build_pack(pack, settings.pack_config()).embedder.dim
    store = open_store(f"sqlite:///{(data_dir / 'facesearch.db').resolve()}")
    try:
        store.create_collection(COLLECTION, "bench", "", "internal", pack, {})
        rng = np.random.default_rng(seed)
        vectors = rng.normal(size=(n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        owners = np.arange(n, dtype=np.int64) // 4
        bulk_fill(store, COLLECTION, vectors, owners, external_prefix="p-")
        _, key = store.create_api_key("bench", "admin")
    finally:
        store.close()
    return key, pack, dim


def enrol_people(client: httpx.Client, faces: Path) -> int:
    enrolled = 0
    for folder in sorted((faces / "people").iterdir()):
        if not folder.is_dir():
            continue
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        r = client.post(
            f"/v1/collections/{COLLECTION}/persons",
            data={"external_id": folder.name, "name": folder.name},
            files=files,
        )
        r.raise_for_status()
        enrolled += len(photos)
    return enrolled


def identify(client: httpx.Client, photo: bytes) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = client.post(
        f"/v1/collections/{COLLECTION}/identify", files={"image": ("probe.jpg", photo, "image/jpeg")}
    )
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    data: dict[str, Any] = r.json()["data"]
    return elapsed, data


def one_client(url: str, key: str, probes: list[tuple[str, bytes]], requests: int) -> dict[str, Any]:
    lat: dict[str, list[float]] = {name: [] for name, _ in probes}
    stages: dict[str, dict[str, list[float]]] = {name: {} for name, _ in probes}
    names: dict[str, str] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for _name, photo in probes:  # warm-up
            identify(client, photo)
        for _ in range(requests):
            for name, photo in probes:
                secs, data = identify(client, photo)
                lat[name].append(secs * 1000)
                for k, v in data["timings"].items():
                    stages[name].setdefault(k, []).append(float(v))
                stages[name].setdefault("service", []).append(float(data["query_time_ms"]))
                names[name] = data["matches"][0]["external_id"] if data["matches"] else "unknown"
    out: dict[str, Any] = {}
    for name, values in lat.items():
        st = {k: statistics.median(v) for k, v in stages[name].items() if k != "service"}
        model = sum(st.values())
        service = statistics.median(stages[name]["service"])
        out[name] = {
            "p50_ms": statistics.median(values),
            "p90_ms": pct(values, 90),
            "p99_ms": pct(values, 99),
            "requests": len(values),
            "stages_p50_ms": st,
            "stages_sum_ms": model,
            "p50_over_stages": statistics.median(values) / model if model else None,
            # the service's own query_time_ms (analysis hand-off, stages, search, SQL), p50
            "service_p50_ms": service,
            "answer": names[name],
        }
    return out


def clients(url: str, key: str, probes: list[tuple[str, bytes]], n: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    done = [0] * n

    def run(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            j = i
            while time.perf_counter() < stop:
                identify(client, probes[j % len(probes)][1])
                done[i] += 1
                j += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(run, range(n)))
    return sum(done) / (time.perf_counter() - t0)


def full_size_probes(faces: Path) -> list[tuple[str, bytes]]:
    return [
        ("obama1.jpg 1480x832", (faces / "probes" / "obama1.jpg").read_bytes()),
        ("fr_obama_and_biden.jpg 2000x1428", (faces / "groups" / "fr_obama_and_biden.jpg").read_bytes()),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("FACESEARCH_FACES_DIR", "../shared/faces"))
    )
    ap.add_argument(
        "--gallery", type=int, default=1000, help="synthetic faces besides people/ (default 1000)"
    )
    ap.add_argument("--requests", type=int, default=400, help="one-client requests per probe (default 400)")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds per concurrency level")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of the server process")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    faces = args.faces.resolve()
    if not (faces / "probes").is_dir():
        print(f"no photos in {faces}: pass --faces or set FACESEARCH_FACES_DIR", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fs-identify-"))
    res: dict[str, Any] = {"load_before": loadavg()}
    try:
        data_dir = work / "data"
        data_dir.mkdir()
        key, pack, dim = fill(data_dir, args.gallery, seed=7)
        res.update(pack=pack, dim=dim, gallery=args.gallery)
        from facesearch.config import Settings

        models = str(Settings().resolved_models_dir.resolve())
        server = Server(data_dir, args.workers, work, env={"FACESEARCH_MODELS_DIR": models})
        try:
            res["start_s"] = server.wait_ready()
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as c:
                res["enrolled_photos"] = enrol_people(c, faces)
            probes = [(f"{n} 640x480", b) for n, b in probe_photos(faces)] + full_size_probes(faces)
            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(server.proc.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "250",
                        "--output",
                        str(args.profile),
                        "--nonblocking",
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
            kids = children(server.proc.pid)
            cpu0, kid0 = cpu_seconds(server.proc.pid), sum(cpu_seconds(k) for k in kids)
            res["load_before_1_client"] = loadavg()
            res["one_client"] = one_client(server.url, key, probes, args.requests)
            total = args.requests * len(probes)
            res["main_cpu_ms_per_request"] = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / total
            res["workers_cpu_ms_per_request"] = (sum(cpu_seconds(k) for k in kids) - kid0) * 1000 / total
            res["load_after_1_client"] = loadavg()
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
            crops = [p for p in probes if p[0].endswith("640x480")]
            res["throughput_rps"] = {}
            for n in (1, 2, 4):
                res["throughput_rps"][n] = clients(server.url, key, crops, n, args.seconds)
            res["load_after_clients"] = loadavg()
            kids = children(server.proc.pid)
            res["server_rss_mb"] = rss_bytes(server.proc.pid) / 2**20
            res["workers_rss_mb"] = sum(rss_bytes(k) for k in kids) / 2**20
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


def report(res: dict[str, Any]) -> str:
    lines = [
        f"# identify over HTTP: pack {res['pack']} ({res['dim']}-d), {res['gallery']:,} synthetic faces + "
        f"{res['enrolled_photos']} enrolled photos, 2 workers; server start {res['start_s']:.1f} s",
        "",
        f"load average before: {res['load_before_1_client']}",
        "",
        "| probe | p50 ms | p90 | p99 | requests | stages p50 (ms) | sum | service p50 | p50 / sum "
        "| answer |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for name, r in res["one_client"].items():
        st = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in r["stages_p50_ms"].items())
        lines.append(
            f"| {name} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['requests']} | {st} "
            f"| {r['stages_sum_ms']:.1f} | {r['service_p50_ms']:.1f} | {r['p50_over_stages']:.2f} "
            f"| {r['answer']} |"
        )
    lines += [
        "",
        f"main process CPU per request: {res['main_cpu_ms_per_request']:.2f} ms; "
        f"worker processes: {res['workers_cpu_ms_per_request']:.1f} ms",
        f"load average after: {res['load_after_1_client']}",
        "",
        "| clients | identify/s (640x480 probes) |",
        "|---:|---:|",
    ]
    lines += [f"| {n} | {v:.1f} |" for n, v in res["throughput_rps"].items()]
    lines += [
        "",
        f"load average after: {res['load_after_clients']}",
        f"memory: server {res['server_rss_mb']:.0f} MB + workers {res['workers_rss_mb']:.0f} MB",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
