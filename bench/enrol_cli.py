"""`facesearch enroll` end to end, with one and with two worker processes: photos per second of the
whole command (start-up, model loading, embedding, SQL commits, index), as a user runs it.

``--photos`` LFW photos (default 300, whole person folders of ``lfw/``, linked into a temporary
folder), enrolled into a fresh data folder and collection on the default pack per run; runs
alternate 1, 2, 1, 2, ... workers (``--passes`` each) so background load hits both alike. Prints
the median photos/s of each and their ratio, with the load average before and after.

    .venv/bin/python bench/enrol_cli.py                   # about 2-3 minutes
    .venv/bin/python bench/enrol_cli.py --photos 600 --passes 3
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
from pathlib import Path


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def photo_folder(lfw: Path, photos: int, into: Path) -> int:
    """Person folders of ``lfw`` linked under ``into`` until ``photos`` photos; how many."""
    n = 0
    for person in sorted(p for p in lfw.iterdir() if p.is_dir()):
        files = sorted(person.glob("*.jpg"))
        if not files:
            continue
        (into / person.name).mkdir()
        for f in files:
            (into / person.name / f.name).symlink_to(f)
        n += len(files)
        if n >= photos:
            break
    return n


def run(exe: list[str], folder: Path, workers: int, models: str) -> tuple[float, dict[str, object]]:
    data = Path(tempfile.mkdtemp(prefix="fs-enrol-"))
    env = {**os.environ, "FACESEARCH_MODELS_DIR": models, "FACESEARCH_DATA_DIR": str(data)}
    try:
        subprocess.run([*exe, "collections", "create", "bench"], env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        done = subprocess.run(
            [*exe, "enroll", str(folder), "-c", "bench", "--workers", str(workers), "--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - t0
        summary: dict[str, object] = json.loads(done.stdout)
        return seconds, summary
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--faces", type=Path, default=Path(os.environ.get("FACESEARCH_FACES_DIR", "../shared/faces"))
    )
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--passes", type=int, default=2)
    args = ap.parse_args()
    lfw = args.faces.resolve() / "lfw"
    if not lfw.is_dir():
        print(f"no LFW photos in {lfw}: pass --faces or set FACESEARCH_FACES_DIR", file=sys.stderr)
        return 2
    from facesearch.config import Settings

    models = str(Settings().resolved_models_dir.resolve())
    exe_path = Path(sys.executable).parent / "facesearch"
    exe = [str(exe_path)] if exe_path.exists() else [sys.executable, "-m", "facesearch"]
    work = Path(tempfile.mkdtemp(prefix="fs-enrol-photos-"))
    try:
        n = photo_folder(lfw, args.photos, work)
        print(f"# facesearch enroll: {n} LFW photos, default pack, fresh data folder per run")
        print(f"\nload average before: {loadavg()}\n")
        rates: dict[int, list[float]] = {1: [], 2: []}
        enrolled = {}
        for _ in range(args.passes):
            for workers in (1, 2):
                seconds, summary = run(exe, work, workers, models)
                rates[workers].append(n / seconds)
                enrolled[workers] = summary.get("enrolled")
                print(f"  {workers} worker(s): {seconds:.1f} s, {n / seconds:.1f} photos/s", flush=True)
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print("\n| workers | photos/s (median) | enrolled |\n|---:|---:|---:|")
        print(f"| 1 | {one:.1f} | {enrolled[1]} |\n| 2 | {two:.1f} | {enrolled[2]} |")
        print(f"\ntwo workers / one: {two / one:.2f}x")
        print(f"load average after: {loadavg()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
