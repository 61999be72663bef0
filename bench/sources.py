"""Is a stored face crop enough to embed a face again with another pack? (bench, not a test)

Usage: python bench/sources.py [--source-pack retina] [--packs onnx,dlib] [--pairs N]

The LFW development pairs (pairsDevTest). Every photo's face is found by the source pack (the
collection's pack at enrolment) and cut out as the service keeps it (``imaging.source_crop``:
the box enlarged by half its size on each side, square, at most 320 px, JPEG); then each other
pack embeds the crop with its own detection and alignment, and the original photo as usual.
Prints, per pack: 1:1 accuracy at the pack's default threshold from the originals and from the
crops, and how far the crop's embedding lies from the original's (median, p95; as a share of
the pack's decision distance).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from facesearch.eval.protocols import read_pairs
from facesearch.imaging import source_crop
from facesearch.pipeline import FacePipeline, build_pack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=Path("../shared/faces/lfw"))
    ap.add_argument("--source-pack", default="retina")
    ap.add_argument("--packs", default="onnx,dlib")
    ap.add_argument("--pairs", type=int, default=0, help="use only the first N pairs (0: all)")
    args = ap.parse_args()
    pairs = read_pairs(args.images / "pairsDevTest.txt", args.images).pairs
    if args.pairs:
        pairs = pairs[: args.pairs]
    photos = sorted({p for pair in pairs for p in (pair.path_a, pair.path_b)})
    print(f"load average before: {os.getloadavg()[0]:.2f}; {len(pairs)} pairs, {len(photos)} photos")
    source = FacePipeline(build_pack(args.source_pack))
    crops: dict[Path, bytes] = {}
    t0 = time.perf_counter()
    for p in photos:
        data = p.read_bytes()
        try:
            b = source.analyse_bytes(data).faces[0].detection.box
        except Exception:  # noqa: BLE001 - no face: left out of both measurements
            continue
        crops[p] = source_crop(data, (b.left, b.top, b.width, b.height))
    sizes = [len(c) for c in crops.values()]
    print(
        f"source pack {args.source_pack}: {len(crops)} crops in {time.perf_counter() - t0:.0f} s, "
        f"JPEG median {np.median(sizes) / 1024:.1f} KiB (p95 {np.percentile(sizes, 95) / 1024:.1f} KiB)"
    )
    print(
        "| pack | pairs | accuracy, originals | accuracy, crops | crop vs original distance, median / p95 |"
    )
    print("|---|---|---|---|---|")
    for name in args.packs.split(","):
        pack = build_pack(name)
        pipe = FacePipeline(pack)
        limit = pack.distance_for_similarity(pack.default_threshold)
        orig: dict[Path, np.ndarray] = {}
        crop: dict[Path, np.ndarray] = {}
        for p in crops:
            try:
                orig[p] = pipe.analyse_bytes(p.read_bytes()).faces[0].embedding
                crop[p] = pipe.analyse_bytes(crops[p]).faces[0].embedding
            except Exception:  # noqa: BLE001 - no face in one of them: the pair is left out
                orig.pop(p, None)
        usable = [pr for pr in pairs if pr.path_a in crop and pr.path_b in crop]
        same = np.array([pr.same for pr in usable])

        def acc(
            vecs: dict[Path, np.ndarray], pairs_: list = usable, same_: np.ndarray = same, cut: float = limit
        ) -> float:
            d = np.array([np.linalg.norm(vecs[pr.path_a] - vecs[pr.path_b]) for pr in pairs_])
            return float(np.mean((d <= cut) == same_))

        shift = np.array([np.linalg.norm(orig[p] - crop[p]) for p in crop]) / limit
        print(
            f"| {name} | {len(usable)} | {100 * acc(orig):.2f}% | {100 * acc(crop):.2f}% | "
            f"{np.median(shift):.3f}, {np.percentile(shift, 95):.3f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
