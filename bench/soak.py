"""A soak run of a real server: mixed traffic from 8 clients, a worker kill, a server kill -9.

Usage: python bench/soak.py [--minutes 30] [--clients 8] [--faces ../shared/faces] [--out DIR]

Starts ``facesearch serve`` (default pack, 2 workers) on a free loopback port with a fresh
data folder, enrols a base gallery, then runs ``--clients`` threads for ``--minutes`` doing a
mix of enrol (a new person with one LFW photo), identify, identify-all (group photos),
delete (a person this client enrolled), list persons and add-face. A third of the way in one
worker process is killed with SIGKILL; halfway the server itself is killed with SIGKILL and
started again on the same data folder and port. Every minute it prints requests, errors by
code and p50/p95 per operation, and the RSS of the server and its workers.

At the end it checks, against the restarted server, that every acknowledged write is there
(each acknowledged person readable, and found by identify with its own photo) and every
acknowledged delete is gone. A request whose answer was lost (the connection broke when the
server died) is "in doubt": either outcome is correct for it, and it is counted apart. The
exit code is 1 when a check fails. Not a test: it takes as long as you tell it to.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import facesearch
from facesearch import errors

COLLECTION = "soak"
#: Weights of the operations each client picks from.
MIX = {"enrol": 20, "identify": 35, "identify_all": 10, "delete": 8, "list": 17, "add_face": 10}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (a pool replaced by a request thread is that thread's)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return sorted(set(out))


class Server:
    """``facesearch serve`` in a subprocess on a fixed port and data folder."""

    def __init__(self, data: Path, port: int, workers: int, log: Path) -> None:
        self.data, self.port, self.workers, self.log = data, port, workers, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        script = Path(sys.executable).parent / "facesearch"
        cmd = [str(script), "serve", "--port", str(self.port), "--workers", str(self.workers)]
        cmd += ["--data-dir", str(self.data)]
        env = dict(os.environ)
        # The models `make test` installed in the checkout, unless told otherwise: the soak runs
        # the default a user gets (onnx when installed), not the dlib fallback of an empty folder.
        repo_models = Path(__file__).resolve().parents[1] / "data" / "models"
        if "FACESEARCH_MODELS_DIR" not in env and (repo_models / "onnx").is_dir():
            env["FACESEARCH_MODELS_DIR"] = str(repo_models)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 180:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after 180 s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers_pids(self) -> list[int]:
        # The pool's processes (the resource tracker is a child too: it holds no model).
        return [c for c in children(self.pid) if "resource_tracker" not in _cmdline(c)]

    def kill9(self) -> None:
        assert self.proc is not None
        pids = self.workers_pids()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30  # workers exit when their parent dies (#15.2)
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Ledger:
    """What the server acknowledged, what was lost in flight, and what every request cost."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    persons: dict[str, Path] = field(default_factory=dict)  # acknowledged, not deleted: id -> photo
    deleted: set[str] = field(default_factory=set)  # acknowledged deletes
    doubt: set[str] = field(default_factory=set)  # ids whose delete answer was lost
    doubtful_creates: int = 0  # creates whose answer was lost (no id known)
    faces_added: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    latency: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    by_op: Counter[str] = field(default_factory=Counter)  # "operation CODE" -> count
    requests: int = 0

    def record(self, minute: int, op: str, ms: float, code: str) -> None:
        with self.lock:
            self.requests += 1
            self.codes[code] += 1
            if code != "ok":
                self.by_op[f"{op} {code}"] += 1
            if code == "ok":
                self.latency[(minute, op)].append(ms)


class Client(threading.Thread):
    def __init__(
        self,
        n: int,
        url: str,
        key: str,
        photos: list[Path],
        groups: list[bytes],
        ledger: Ledger,
        start: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True, name=f"client-{n}")
        self.n, self.url, self.key, self.photos, self.groups = n, url, key, photos, groups
        self.ledger, self.start_time, self.stop_event = ledger, start, stop
        self.rng = random.Random(n)
        self.mine: list[str] = []
        self.count = 0

    def run(self) -> None:
        ops, weights = list(MIX), list(MIX.values())
        with facesearch.Client(self.url, self.key, timeout=120) as fs:
            while not self.stop_event.is_set():
                op = self.rng.choices(ops, weights)[0]
                t0 = time.perf_counter()
                code = "ok"
                try:
                    getattr(self, op)(fs)
                except errors.FaceSearchError as exc:
                    code = exc.code
                except httpx.HTTPError as exc:
                    code = "connection:" + type(exc).__name__
                    time.sleep(0.5)  # the server is down: do not spin
                ms = (time.perf_counter() - t0) * 1000
                self.ledger.record(int((time.monotonic() - self.start_time) // 60), op, ms, code)

    def _photo(self) -> Path:
        return self.rng.choice(self.photos)

    def enrol(self, fs: facesearch.Client) -> None:
        self.count += 1
        photo = self._photo()
        try:
            person = fs.create_person(COLLECTION, external_id=f"c{self.n}-{self.count}", images=[photo])
        except httpx.HTTPError:
            with self.ledger.lock:
                self.ledger.doubtful_creates += 1
            raise
        with self.ledger.lock:
            self.ledger.persons[person["id"]] = photo
        self.mine.append(person["id"])

    def delete(self, fs: facesearch.Client) -> None:
        if not self.mine:
            return self.list(fs)
        pid = self.mine.pop(self.rng.randrange(len(self.mine)))
        try:
            fs.delete_person(COLLECTION, pid)
        except httpx.HTTPError:
            with self.ledger.lock:
                self.ledger.persons.pop(pid, None)
                self.ledger.doubt.add(pid)
            raise
        with self.ledger.lock:
            self.ledger.persons.pop(pid, None)
            self.ledger.deleted.add(pid)

    def add_face(self, fs: facesearch.Client) -> None:
        if not self.mine:
            return self.enrol(fs)
        fs.add_face(COLLECTION, self.rng.choice(self.mine), self._photo())
        with self.ledger.lock:
            self.ledger.faces_added += 1

    def identify(self, fs: facesearch.Client) -> None:
        fs.identify(COLLECTION, self._photo())

    def identify_all(self, fs: facesearch.Client) -> None:
        fs.identify_all(COLLECTION, self.rng.choice(self.groups))

    def list(self, fs: facesearch.Client) -> None:
        fs.list_persons(COLLECTION, limit=50)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else 0.0)


def report_minute(ledger: Ledger, minute: int, server: Server) -> None:
    with ledger.lock:
        rows = {op: list(ledger.latency.get((minute, op), [])) for op in MIX}
        codes = dict(ledger.codes)
        total = ledger.requests
    parts = [
        f"{op} {len(v)} p50 {statistics.median(v):.0f} p95 {pct(v, 95):.0f}" for op, v in rows.items() if v
    ]
    workers = server.workers_pids()
    rss = rss_mib(server.pid)
    wrss = sum(rss_mib(w) for w in workers)
    errs = {k: v for k, v in codes.items() if k != "ok"}
    print(
        f"[min {minute:>3}] requests {total}; RSS server {rss:.0f} MiB, workers {wrss:.0f} MiB "
        f"({len(workers)}); load {os.getloadavg()[0]:.2f}; errors {errs or 'none'}\n          "
        + "; ".join(parts),
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    ap.add_argument("--out", type=Path, default=None, help="data folder and log (default: a temp folder)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="facesearch-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    data, log = out / "data", out / "server.log"
    photos = sorted((args.faces / "lfw").rglob("*.jpg"))
    groups = [p.read_bytes() for p in sorted((args.faces / "groups").glob("*.jpg"))]
    server = Server(data, free_port(), args.workers, log)
    print(f"soak: {args.clients} clients, {args.minutes} min, data {data}, log {log}", flush=True)
    print(f"server up in {server.start():.1f} s", flush=True)
    key = (data / "admin-key.txt").read_text().strip()
    with facesearch.Client(server.url, key, timeout=120) as fs:
        fs.create_collection(COLLECTION)
    ledger = Ledger()
    stop = threading.Event()
    start = time.monotonic()
    clients = [Client(i, server.url, key, photos, groups, ledger, start, stop) for i in range(args.clients)]
    for c in clients:
        c.start()
    duration = args.minutes * 60
    events = {"worker": duration / 3, "server": duration / 2}
    minute = 0
    while time.monotonic() - start < duration:
        time.sleep(1)
        elapsed = time.monotonic() - start
        if "worker" in events and elapsed >= events["worker"]:
            del events["worker"]
            victims = server.workers_pids()
            if victims:
                os.kill(victims[0], signal.SIGKILL)
                print(f"[{elapsed:6.0f} s] SIGKILL worker {victims[0]}", flush=True)
        if "server" in events and elapsed >= events["server"]:
            del events["server"]
            server.kill9()
            print(f"[{elapsed:6.0f} s] SIGKILL server; restarting", flush=True)
            print(f"[{time.monotonic() - start:6.0f} s] server back up in {server.start():.1f} s", flush=True)
        if elapsed >= (minute + 1) * 60:
            report_minute(ledger, minute, server)
            minute += 1
    stop.set()
    for c in clients:
        c.join(timeout=180)
    return verify(server, key, ledger, time.monotonic() - start)


def verify(server: Server, key: str, ledger: Ledger, elapsed: float) -> int:
    """Every acknowledged person is there and found by its own photo; every acknowledged delete gone."""
    missing, wrongly_there, not_found = [], [], 0
    with facesearch.Client(server.url, key, timeout=120) as fs:
        for pid in sorted(ledger.persons):
            try:
                fs.get_person(COLLECTION, pid)
            except errors.NotFound:
                missing.append(pid)
        for pid in sorted(ledger.deleted):
            try:
                fs.get_person(COLLECTION, pid)
                wrongly_there.append(pid)
            except errors.NotFound:
                pass
        # Its own photo must find the person. The same LFW photo may be enrolled for several
        # persons (photos are drawn at random), so every match is asked for (top_k 100, an
        # exact scan): a miss is then the index's fault, never a tie beyond top_k.
        sample = random.Random(0).sample(sorted(ledger.persons), min(100, len(ledger.persons)))
        sharing = Counter(ledger.persons.values())
        for pid in sample:
            photo = ledger.persons[pid]
            matches = fs.identify(COLLECTION, photo, top_k=100, search_mode="accurate")["matches"]
            if pid not in {m["person_id"] for m in matches}:
                not_found += 1
                faces = len(fs.get_person(COLLECTION, pid)["faces"])
                print(
                    f"not found by its own photo: {pid} ({faces} faces; photo {photo.name} enrolled for "
                    f"{sharing[photo]} persons; {len(matches)} matches)"
                )
        health = fs.health()
    server.stop()
    all_ms = [ms for values in ledger.latency.values() for ms in values]
    print("\n== soak summary ==")
    print(f"ran {elapsed / 60:.1f} min; requests {ledger.requests}; answered ok {ledger.codes['ok']}")
    print(
        "errors by code: "
        + (", ".join(f"{k} {v}" for k, v in ledger.codes.most_common() if k != "ok") or "none")
    )
    print("errors by operation: " + (", ".join(f"{k} {v}" for k, v in ledger.by_op.most_common()) or "none"))
    for op in MIX:
        v = [ms for (m, o), values in ledger.latency.items() if o == op for ms in values]
        if v:
            print(f"  {op:13} {len(v):>7} ok  p50 {statistics.median(v):7.1f} ms  p95 {pct(v, 95):7.1f} ms")
    print(
        f"all operations p50 {statistics.median(all_ms):.1f} ms, p95 {pct(all_ms, 95):.1f} ms"
        if all_ms
        else ""
    )
    print(f"health at the end: {health.get('status')} counts {health.get('counts')}")
    print(
        f"acknowledged persons present: {len(ledger.persons) - len(missing)}/{len(ledger.persons)}; "
        f"acknowledged deletes absent: {len(ledger.deleted) - len(wrongly_there)}/{len(ledger.deleted)}; "
        f"in doubt (answer lost): {ledger.doubtful_creates} creates, {len(ledger.doubt)} deletes"
    )
    print(f"identify with its own photo found {len(sample) - not_found}/{len(sample)} sampled persons")
    failed = bool(missing or wrongly_there or not_found)
    print(
        "RESULT: "
        + ("FAIL" if failed else "every acknowledged write present, every acknowledged delete absent")
    )
    if missing:
        print(f"missing: {missing[:20]}")
    if wrongly_there:
        print(f"deleted but present: {wrongly_there[:20]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
