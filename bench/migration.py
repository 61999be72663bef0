"""A pack migration while the service answers: throughput and identify latency (bench, not a test).

Usage: python bench/migration.py [--faces 200] [--from-pack retina] [--to-pack onnx]

The service as the server builds it (worker processes, the background migration thread) on a fresh
data folder, a collection with ``keep_source`` holding the first LFW development photo of
``--faces`` persons; identify of their second photos, one client, before, during and after the
migration to ``--to-pack``. Prints the migration's faces per second and identify p50/p90 in each
phase, with the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from facesearch.api.app import build_service
from facesearch.config import Settings
from facesearch.errors import FaceSearchError
from facesearch.eval.protocols import read_identities
from facesearch.service.sources import new_key


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=Path("../shared/faces/lfw"))
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--from-pack", default="retina")
    ap.add_argument("--to-pack", default="onnx")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    people = [(n, ps) for n, ps in read_identities(args.images).items() if len(ps) >= 2][: args.faces]
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), default_pack=args.from_pack, workers=args.workers, source_key=new_key()
        )
        svc = build_service(settings)
        svc.start_background()
        try:
            svc.create_collection("lfw", settings={"keep_source": True})
            t0 = time.perf_counter()
            enrolled = 0
            for name, photos in people:
                try:
                    svc.create_person("lfw", external_id=name, images=[photos[0].read_bytes()])
                    enrolled += 1
                except FaceSearchError:
                    pass  # refused by the quality gate
            print(f"enrolled {enrolled} faces with {args.from_pack} in {time.perf_counter() - t0:.1f} s")
            probes = [photos[1].read_bytes() for _, photos in people]

            def identify(i: int) -> float:
                t = time.perf_counter()
                try:
                    svc.identify("lfw", probes[i % len(probes)])
                except FaceSearchError:
                    pass
                return (time.perf_counter() - t) * 1000

            before = [identify(i) for i in range(60)]
            started = time.perf_counter()
            mid = svc.start_migration("lfw", args.to_pack).record.id
            during: list[float] = []
            while svc.migration_status("lfw", mid).record.state == "running":
                during.append(identify(len(during)))
            took = time.perf_counter() - started
            final = svc.migration_status("lfw", mid).record
            after = [identify(i) for i in range(60)]
        finally:
            svc.close()

    def stats(xs: list[float]) -> str:
        return (
            f"p50 {statistics.median(xs):.1f} ms, p90 {statistics.quantiles(xs, n=10)[-1]:.1f} ms ({len(xs)})"
        )

    print(
        f"migration {args.from_pack} -> {args.to_pack}: {final.state}, {final.result.get('faces')} faces in "
        f"{took:.1f} s = {final.result.get('faces', 0) / took:.1f} faces/s, {len(final.failed)} failed"
    )
    print(f"identify before ({args.from_pack}): {stats(before)}")
    print(f"identify during (still {args.from_pack}): {stats(during)}")
    print(f"identify after ({args.to_pack}): {stats(after)}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
