"""Scale-out: identify and enrolment with 1, 2 and 3 API processes on one PostgreSQL, with the
in-process index and with Milvus, beside one process on SQLite, in one run.

Usage: python bench/scaleout.py [--sizes 100000,1000000] [--requests 200] [--clients 4]
       [--workdir /tmp/fs-scaleout] [--out bench/results/scaleout]

Needs PostgreSQL and Milvus: the ones `scripts/pg.sh start` and `scripts/milvus.sh start` run
(this script starts them when they are not running, and stops those it started).

For each gallery size, the gallery of bench/scale.py (the 9 photos of people/ embedded by the dlib
pipeline, real LFW descriptors, synthetic faces from a Gaussian fitted to them; dlib's 128-d
descriptor, as bench/scale.py, so the figures compare with the README's Performance section) is
written once to a SQLite file and once to a PostgreSQL schema (`bulk_fill`), and once into Milvus
(collections of their own, HNSW built before measuring). Then, per configuration:

- `sqlite-1`: one `facesearch serve` on the SQLite file, in-process index (the default);
- `pg-N`, N = 1, 2, 3: N servers on the PostgreSQL schema, each with its own in-process index
  (loaded from a snapshot of the same gallery, as after a restart);
- `milvus-N`, N = 1, 2, 3: N servers on the PostgreSQL schema sharing the Milvus index.

Each server runs one worker process (the 2 cores are shared by everything: servers, workers,
PostgreSQL, Milvus, the clients). Identify uses the 640x480 probes of bench/scale.py, k=1:
one client (p50/p95, requests spread over the servers in turn, as a round-robin balancer
would), then `--clients` concurrent clients (throughput). With 2 servers: enrolment
throughput (two clients, one per server, enrolling LFW photos as new persons), and the
replication delay: enrol on A, then ask B until it answers with the new person (and the same
for a delete), from the moment A acknowledged.

Writes OUT.md and OUT.json. A benchmark, not a test: nothing is asserted. The load average is
printed before and after each table; the machine is shared, so read ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import (  # noqa: E402
    COLLECTION,
    Gallery,
    Samples,
    Server,
    _git,
    _plain,
    fill_store,
    log,
    med,
)
from scale_data import FittedModel, faces_dir, lfw_embeddings, people_photos, probe_photos  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (100_000, 1_000_000)


#: The per-comparison cut-off of the dlib pack, sent with every identify: on defaults a collection
#: applies the gallery-aware rule (FPR 1% over the whole gallery), under which dlib's weak
#: open-set accuracy names almost nobody at 100k faces; this benchmark measures speed, and
#: checks each answer names the probe's person.
THRESHOLD = {"threshold": "0"}


def identify_once(client: httpx.Client, photo: bytes) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = client.post(
        f"/v1/collections/{COLLECTION}/identify",
        files={"image": ("probe.jpg", photo, "image/jpeg")},
        data={"top_k": "1", **THRESHOLD},
    )
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, r.json()["data"]


def loadavg() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


# ---- the servers the benchmark needs ---------------------------------------------------------------


class Backends:
    """PostgreSQL and Milvus from the project's scripts (started here when not running)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.pg_url = self._url("pg", REPO / ".pg" / "url")
        self.milvus_url = self._url("milvus", REPO / ".milvus" / "url")

    def _url(self, name: str, path: Path) -> str:
        if not path.is_file():
            subprocess.run(["sh", str(REPO / "scripts" / f"{name}.sh"), "start"], check=True)
            self.started.append(name)
        if not path.is_file():
            sys.exit(f"bench/scaleout.py needs {name}: scripts/{name}.sh start could not start it")
        return path.read_text().strip()

    def stop(self) -> None:
        for name in reversed(self.started):
            subprocess.run(["sh", str(REPO / "scripts" / f"{name}.sh"), "stop"], check=False)


def pg_schema(url: str, name: str) -> str:
    """A fresh schema ``name`` (dropped first) and the URL whose connections use it."""
    from sqlalchemy import create_engine, text

    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {name}"))
    admin.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"


def drop_collections(url: str) -> None:
    """Drop the Milvus collections of a milvus:// URL's prefix (a previous run's)."""
    from urllib.parse import parse_qsl, urlsplit

    from pymilvus import MilvusClient

    parts = urlsplit(url)
    prefix = dict(parse_qsl(parts.query))["prefix"] + "_"
    client = MilvusClient(uri=f"http://{parts.hostname}:{parts.port}")
    try:
        for name in client.list_collections():
            if name.startswith(prefix):
                client.drop_collection(name)
    finally:
        client.close()


def milvus_rss_mb() -> float:
    """Resident memory of the Milvus server process(es) on this machine."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if cmd and cmd[0].endswith(b"/milvus") and b"run" in cmd:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total / 2**20


def drop_pg_schema(url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    admin.dispose()


def fill_milvus(url: str, database_url: str, filled: dict[str, Any], vectors: np.ndarray) -> dict[str, float]:
    """The gallery into Milvus as the follower would write it (the cursor in the database), then
    HNSW built on all of it."""
    from facesearch.index import open_index
    from facesearch.storage import open_store

    index = open_index(url, None)
    part = int(filled["collection_pk"])
    t0 = time.perf_counter()
    step = 50_000
    for at in range(0, len(vectors), step):
        pids = filled["person_ids"][at : at + step]
        groups: dict[int, tuple[str, ...]] = {int(p): () for p in np.unique(pids)}
        index.add(part, filled["face_ids"][at : at + step], pids, vectors[at : at + step], groups=groups)  # type: ignore[call-arg]
        log(f"    milvus insert {min(len(vectors), at + step):,}/{len(vectors):,}")
    store = open_store(database_url)
    store.set_index_cursor(index.cursor_name, int(filled["last_seq"]), index.generation)  # type: ignore[attr-defined]
    store.close()
    insert_s = time.perf_counter() - t0
    client = index._client  # type: ignore[attr-defined]
    name = index._name(vectors.shape[1])  # type: ignore[attr-defined]
    client.flush(name)
    t1 = time.perf_counter()
    while True:
        info = client.describe_index(name, "vector")
        done, total = int(info.get("indexed_rows", 0)), int(info.get("total_rows", 0))
        if total >= len(vectors) and done >= total and int(info.get("pending_index_rows", 0)) == 0:
            break
        log(f"    milvus HNSW build {done:,}/{total:,}")
        time.sleep(10)
    index.barrier()  # type: ignore[attr-defined]
    index.close()
    return {"milvus_insert_s": insert_s, "milvus_index_build_s": time.perf_counter() - t1}


def hnsw_snapshot(directory: Path, filled: dict[str, Any], vectors: np.ndarray) -> float:
    """The in-process index of the gallery, saved as a service snapshot (what a restart loads)."""
    from facesearch.index import HnswIndex

    t0 = time.perf_counter()
    index = HnswIndex()
    index.add(int(filled["collection_pk"]), filled["face_ids"], filled["person_ids"], vectors)
    index.applied_seq = int(filled["last_seq"])
    index.save(directory)
    index.close()
    return time.perf_counter() - t0


# ---- measurements --------------------------------------------------------------------------------


class Fleet:
    """N servers sharing one database (and index, for Milvus), one data folder each."""

    def __init__(self, work: Path, n: int, env: dict[str, str], snapshot: Path | None, sqlite: Path | None):
        self.servers: list[Server] = []
        for i in range(n):
            folder = work / f"s{i}"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            data = folder / "data"
            if sqlite is not None:
                shutil.copytree(sqlite, data)  # the SQLite gallery with its snapshot
            else:
                data.mkdir()
                if snapshot is not None:
                    shutil.copytree(snapshot, data / "index")
            logs = folder / "logs"
            logs.mkdir()
            self.servers.append(Server(data, 1, logs, env=env))
        self.startup_s = [s.wait_ready(900) for s in self.servers]

    def memory_mb(self) -> float:
        total = 0
        for s in self.servers:
            m = s.memory()
            total += m["server_rss"] + m["workers_rss"]
        return total / 2**20

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def identify_load(
    fleet: Fleet, key: str, probes: list[tuple[str, bytes]], requests: int, clients: int
) -> dict[str, Any]:
    urls = [s.url for s in fleet.servers]
    pool = [httpx.Client(base_url=u, headers={"X-API-Key": key}, timeout=120) for u in urls]
    try:
        for i in range(4 * len(pool)):  # warm every server (models, caches)
            identify_once(pool[i % len(pool)], probes[i % len(probes)][1])
        one = Samples()
        for i in range(requests):
            name, photo = probes[i % len(probes)]
            secs, data = identify_once(pool[i % len(pool)], photo)
            one.add(name, secs, data)
        many = Samples()
        counter = iter(range(10**9))
        lock = threading.Lock()

        def run(worker: int) -> None:
            mine = [httpx.Client(base_url=u, headers={"X-API-Key": key}, timeout=120) for u in urls]
            try:
                for _ in range(requests // clients):
                    with lock:
                        i = next(counter)
                    name, photo = probes[(i + worker) % len(probes)]
                    secs, data = identify_once(mine[i % len(mine)], photo)
                    many.add(name, secs, data)
            finally:
                for c in mine:
                    c.close()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            list(ex.map(run, range(clients)))
        wall = time.perf_counter() - t0
    finally:
        for c in pool:
            c.close()
    out = one.summary("c1")
    out.update(many.summary(f"c{clients}", wall))
    return out


def enrol_and_replicate(
    fleet: Fleet, key: str, photos: list[bytes], probe: bytes, rounds: int
) -> dict[str, Any]:
    """Enrolment throughput with two servers, and the delay until B sees what A wrote."""
    a, b = fleet.servers[0].url, fleet.servers[1].url
    ca = httpx.Client(base_url=a, headers={"X-API-Key": key}, timeout=120)
    cb = httpx.Client(base_url=b, headers={"X-API-Key": key}, timeout=120)
    out: dict[str, Any] = {}
    try:
        tag = str(time.time_ns())

        def enrol(client: httpx.Client, ext: str, photo: bytes) -> str | None:
            r = client.post(
                f"/v1/collections/{COLLECTION}/persons",
                data={"external_id": ext},
                files={"images": ("p.jpg", photo, "image/jpeg")},
            )
            return str(r.json()["data"]["id"]) if r.status_code == 201 else None

        halves = [photos[0::2], photos[1::2]]

        def run(i: int) -> int:
            client = ca if i == 0 else cb
            return sum(enrol(client, f"e-{tag}-{i}-{j}", p) is not None for j, p in enumerate(halves[i]))

        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as ex:
            made = sum(ex.map(run, range(2)))
        wall = time.perf_counter() - t0
        out["enrol_photos"] = len(photos)
        out["enrol_made"] = made
        out["enrol_photos_per_s"] = len(photos) / wall
        # replication: a probe photo of someone new, enrolled on A, then asked of B until found
        seen, gone = [], []
        for r in range(rounds):
            pid = enrol(ca, f"r-{tag}-{r}", probe)
            if pid is None:
                raise RuntimeError("the replication probe was not enrolled")
            t1 = time.perf_counter()
            while True:
                _, data = identify_once(cb, probe)
                if data["matches"] and str(data["matches"][0]["person_id"]) == pid:
                    break
                if time.perf_counter() - t1 > 60:
                    raise RuntimeError("B never saw A's enrolment")
            seen.append(time.perf_counter() - t1)
            assert ca.delete(f"/v1/collections/{COLLECTION}/persons/{pid}").status_code in (200, 204)
            t2 = time.perf_counter()
            while True:
                _, data = identify_once(cb, probe)
                if not data["matches"] or str(data["matches"][0]["person_id"]) != pid:
                    break
                if time.perf_counter() - t2 > 60:
                    raise RuntimeError("B kept a person A deleted")
            gone.append(time.perf_counter() - t2)
        out["replication_seen_p50_ms"] = med(seen) * 1e3
        out["replication_seen_max_ms"] = max(seen) * 1e3
        out["replication_delete_p50_ms"] = med(gone) * 1e3
        out["replication_delete_max_ms"] = max(gone) * 1e3
        out["replication_rounds"] = rounds
    finally:
        ca.close()
        cb.close()
    return out


# ---- report -------------------------------------------------------------------------------------


def f1(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}"


def markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    lines = [
        "# Scale-out benchmark",
        "",
        f"{s['date']}, {s['cpus']} cores, commit {s['commit']}; pack {s['pack']} ({s['dim']}-d), "
        f"{s['requests']} identify requests per measurement, {s['clients']} concurrent clients for "
        f"the throughput column; one worker process per server.",
        "",
    ]
    for row in res["sizes"]:
        lines += [
            f"## {row['faces']:,} faces",
            "",
            f"Fill: SQL {row['sqlite_fill_s']:.0f} s (SQLite) / {row['pg_fill_s']:.0f} s (PostgreSQL); "
            f"Milvus insert {row.get('milvus_insert_s', float('nan')):.0f} s, "
            f"HNSW build {row.get('milvus_index_build_s', float('nan')):.0f} s. "
            f"Load average before: {row['load_before']}, after: {row['load_after']}.",
            "",
            "| configuration | servers | start-up s | identify p50 ms | p95 ms | "
            f"{s['clients']} clients req/s | p50 ms under load | correct | RSS MB (all servers + workers) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        c = s["clients"]
        for cfg in row["configs"]:
            lines.append(
                f"| {cfg['name']} | {cfg['servers']} | {max(cfg['startup_s']):.1f} | "
                f"{f1(cfg['c1_p50_ms'])} | "
                f"{f1(cfg['c1_p95_ms'])} | {f1(cfg[f'c{c}_rps'])} | {f1(cfg[f'c{c}_p50_ms'])} | "
                f"{cfg['c1_correct']:.2f} | {cfg['rss_mb']:.0f}"
                + (f" + Milvus {cfg['milvus_rss_mb']:.0f}" if "milvus_rss_mb" in cfg else "")
                + " |"
            )
        lines += [
            "",
            "| 2 servers | enrol photos/s | B sees A's enrolment p50 / max ms "
            "| B honours A's delete p50 / max ms |",
            "|---|---:|---:|---:|",
        ]
        for cfg in row["configs"]:
            if "enrol_photos_per_s" in cfg:
                lines.append(
                    f"| {cfg['name']} | {cfg['enrol_photos_per_s']:.1f} | "
                    f"{cfg['replication_seen_p50_ms']:.0f} / {cfg['replication_seen_max_ms']:.0f} | "
                    f"{cfg['replication_delete_p50_ms']:.0f} / {cfg['replication_delete_max_ms']:.0f} |"
                )
        lines.append("")
    return "\n".join(lines) + "\n"


def write(res: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=_plain) + "\n")
    out.with_suffix(".md").write_text(markdown(res))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--servers", default="1,2,3")
    parser.add_argument("--enrol-photos", type=int, default=60)
    parser.add_argument("--replication-rounds", type=int, default=10)
    parser.add_argument("--workdir", default="/tmp/fs-scaleout")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scaleout"))
    parser.add_argument("--faces", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    counts = [int(x) for x in args.servers.split(",") if x.strip()]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    faces = faces_dir(args.faces)

    from facesearch.pipeline import FacePipeline, build_pack

    backends = Backends()
    try:
        pack = build_pack("dlib")
        THRESHOLD["threshold"] = str(pack.default_threshold)
        log("reading real LFW descriptors (dlib)")
        real = lfw_embeddings(faces, "dlib")
        model = FittedModel.fit(real)
        pipeline = FacePipeline(pack)
        people = [(n, pipeline.analyse_bytes(d).faces[0].embedding) for n, d in people_photos(faces)]
        probes = probe_photos(faces)
        lfw = sorted((faces / "lfw").rglob("*.jpg"))
        # The replication probe: an LFW person with one photo (so not in the gallery), kept out of
        # the enrolment set (a photo enrolled twice is refused).
        singles = [p for p in lfw if len(list(p.parent.glob("*.jpg"))) == 1]
        replication_probe = singles[len(singles) // 2]
        rest = [p for p in lfw if p != replication_probe]
        step = max(1, len(rest) // (args.enrol_photos + 1))
        enrol_photos = [p.read_bytes() for p in rest[::step][: args.enrol_photos]]
        res: dict[str, Any] = {
            "settings": {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "cpus": os.cpu_count(),
                "commit": _git("rev-parse", "--short", "HEAD"),
                "pack": "dlib",
                "dim": int(real.vectors.shape[1]),
                "requests": args.requests,
                "clients": args.clients,
                "servers": counts,
                "milvus": "milvus==2.3.5 standalone (scripts/milvus.sh), pymilvus client",
                "postgresql": "Debian postgresql-15 (scripts/pg.sh)",
            },
            "sizes": [],
        }
        for n in sizes:
            log(f"gallery of {n:,} faces (load {loadavg()})")
            gallery = Gallery(n, real, model, people, args.seed, 50)
            row: dict[str, Any] = {"faces": n, "load_before": loadavg(), "configs": []}
            sqlite_dir = work / f"sqlite-{n}"
            row["sqlite_fill_s"], filled = fill_store(sqlite_dir, gallery)
            row["snapshot_build_s"] = hnsw_snapshot(sqlite_dir / "index", filled, gallery.vectors)
            schema = f"scaleout_{n}"
            pg_url = pg_schema(backends.pg_url, schema)
            pg_dir = work / f"pg-{n}"
            row["pg_fill_s"], pg_filled = fill_store(pg_dir, gallery, database_url=pg_url)
            hnsw_snapshot(pg_dir / "index", pg_filled, gallery.vectors)
            milvus_url = f"{backends.milvus_url}?prefix=scaleout{n}"
            drop_collections(milvus_url)
            row.update(fill_milvus(milvus_url, pg_url, pg_filled, gallery.vectors))
            del gallery
            log(f"  filled: SQLite {row['sqlite_fill_s']:.0f} s, PostgreSQL {row['pg_fill_s']:.0f} s")
            plans: list[tuple[str, int, dict[str, str], Path | None, Path | None, str]] = [
                ("sqlite-1", 1, {}, None, sqlite_dir, filled["key"])
            ]
            for k in counts:
                plans.append(
                    (
                        f"pg-{k}",
                        k,
                        {"FACESEARCH_DATABASE_URL": pg_url},
                        pg_dir / "index",
                        None,
                        pg_filled["key"],
                    )
                )
            for k in counts:
                env = {"FACESEARCH_DATABASE_URL": pg_url, "FACESEARCH_INDEX_URL": milvus_url}
                plans.append((f"milvus-{k}", k, env, None, None, pg_filled["key"]))
            for name, k, env, snap, sqlite, key in plans:
                log(f"  {name}: starting {k} server(s) (load {loadavg()})")
                fleet = Fleet(work / "fleet", k, env, snap, sqlite)
                try:
                    cfg: dict[str, Any] = {"name": name, "servers": k, "startup_s": fleet.startup_s}
                    cfg.update(identify_load(fleet, key, probes, args.requests, args.clients))
                    cfg["rss_mb"] = fleet.memory_mb()
                    if name.startswith("milvus"):
                        cfg["milvus_rss_mb"] = milvus_rss_mb()
                    if k == 2:
                        cfg.update(
                            enrol_and_replicate(
                                fleet,
                                key,
                                enrol_photos,
                                replication_probe.read_bytes(),
                                args.replication_rounds,
                            )
                        )
                    log(
                        f"    p50 {cfg['c1_p50_ms']:.1f} ms, {cfg[f'c{args.clients}_rps']:.1f} req/s"
                        + (f", B saw A's write in {cfg['replication_seen_p50_ms']:.0f} ms" if k == 2 else "")
                    )
                    row["configs"].append(cfg)
                finally:
                    fleet.stop()
            row["load_after"] = loadavg()
            res["sizes"].append(row)
            write(res, out)
            drop_pg_schema(backends.pg_url, schema)
            drop_collections(milvus_url)
            shutil.rmtree(sqlite_dir, ignore_errors=True)
            shutil.rmtree(pg_dir, ignore_errors=True)
        write(res, out)
        print(markdown(res))
    finally:
        backends.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
