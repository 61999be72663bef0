"""Strangers named and genuine persons found when the query face is small (bench, not a test).

Usage: python bench/small_faces.py [--pack onnx] [--sizes 24,32,40,48,64] [--images ../shared/faces/lfw]

The strangers protocol of ``facesearch eval open-set`` (gallery: every candidate, full-size first
photos; default search options) with every probe photo shrunk so that its face measures about N
pixels (the smaller side of the detected box), re-encoded as JPEG, and embedded by the real
pipeline (cached like every eval photo). Prints one row per size.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

from facesearch.eval.embedcache import PhotoEmbedder
from facesearch.eval.openset import open_set_split, run_open_set
from facesearch.eval.protocols import read_identities


def shrink(src: Path, dst: Path, factor: float) -> None:
    with Image.open(src) as im:
        rgb = im.convert("RGB")
        size = (max(8, round(rgb.width * factor)), max(8, round(rgb.height * factor)))
        out = io.BytesIO()
        rgb.resize(size, Image.Resampling.LANCZOS).save(out, format="JPEG", quality=90)
    dst.write_bytes(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=Path("../shared/faces/lfw"))
    ap.add_argument("--pack", default="onnx")
    ap.add_argument("--sizes", default="24,32,40,48,64")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    identities = read_identities(args.images)
    split = open_set_split(identities)
    emb = PhotoEmbedder(args.pack, cache_dir=args.cache_dir, workers=args.workers)
    gallery = [ps[0] for _, ps in split.candidates]
    probes = [p for _, ps in split.candidates for p in ps[1:]] + split.strangers
    emb.prepare(gallery + probes)
    print(f"pack {args.pack}: {len(split.candidates)} candidates enrolled, {len(split.strangers)} strangers")
    print("probe face | strangers named | genuine found | genuine named wrongly")
    rows = [("full size", None)] + [(f"~{s} px", int(s)) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="facesearch-small-") as tmp:
        for label, size in rows:
            files: dict[Path, Path] = {}
            if size is not None:
                folder = Path(tmp) / str(size)
                folder.mkdir()
                for i, p in enumerate(probes):
                    face = emb.face(p)
                    if face is None:
                        continue
                    dst = folder / f"{i}.jpg"
                    shrink(p, dst, size / max(1.0, float(face.quality[0])))
                    files[p] = dst
                emb.prepare(files.values())
            g = run_open_set(identities, emb.face, emb.pack, galleries=(0,), probe_files=files)["galleries"][
                0
            ]
            print(
                f"{label:>10} | {g['strangers_named']}/{g['strangers']} "
                f"({100 * g['strangers_named_rate']:.2f}%) | "
                f"{g['genuine_found']}/{g['genuine']} ({100 * g['genuine_found_rate']:.1f}%) | "
                f"{g['genuine_wrong']}/{g['genuine']}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
