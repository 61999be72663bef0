"""Corrections and unknown-face clustering, measured on the LFW development set (bench, not a test).

Usage: python bench/corrections.py [--pack retina] [--images ../shared/faces/lfw]

1. "Not this person" (negatives). Gallery: the first photo of every identity with 2+ photos.
   For each identity L with 3+ photos whose first photo is wrongly matched (per-comparison
   threshold of the gallery at FPR 1%, as identify's default) to another enrolled person P,
   the correction "L's first photo is not P" is recorded; then L's further photos that would
   still be matched to P are counted as caught (vetoed) or missed, and P's own further photos
   as wrongly vetoed, for each veto rule: within a radius (the pack's distance at a per-pair
   false-match rate), closer to the negative than to P, or either.
2. Clustering. Every photo of the development set as an unknown face, clustered by Chinese
   whispers (``facesearch.service.clusters``) at edge distances of several per-pair FMRs:
   purity, inverse purity, homogeneity and completeness against the true identities.

Writes the tables to stdout (and bench/results/corrections.md with --out).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from facesearch.eval.embedcache import PhotoEmbedder
from facesearch.eval.protocols import read_identities
from facesearch.service.clusters import MAX_NEIGHBOURS, cluster_labels


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def cluster_scores(truth: list[str], labels: np.ndarray) -> dict[str, float]:
    """Purity, inverse purity, homogeneity and completeness (Rosenberg & Hirschberg 2007)."""
    n = len(truth)
    ids = {t: i for i, t in enumerate(sorted(set(truth)))}
    t = np.array([ids[x] for x in truth])
    _, c = np.unique(labels, return_inverse=True)
    table = np.zeros((len(ids), c.max() + 1))
    np.add.at(table, (t, c), 1)
    purity = table.max(axis=0).sum() / n
    inverse = table.max(axis=1).sum() / n
    h_c, h_k = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    joint = table[table > 0] / n
    h_ck = float(-(joint * np.log(joint)).sum())
    mi = h_c + h_k - h_ck
    return {
        "clusters": float(table.shape[1]),
        "purity": purity,
        "inverse_purity": inverse,
        "homogeneity": 1.0 if h_c == 0 else mi / h_c,
        "completeness": 1.0 if h_k == 0 else mi / h_k,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=Path("../shared/faces/lfw"))
    ap.add_argument("--pack", default="retina")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if not args.images.is_dir():
        raise SystemExit(f"{args.images} is missing: the LFW development photos are needed")
    identities = read_identities(args.images)
    emb = PhotoEmbedder(args.pack, cache_dir=args.cache_dir, workers=args.workers)
    emb.prepare(p for ps in identities.values() for p in ps)
    table = emb.pack.calibration
    lines: list[str] = [f"# Corrections and clustering, pack {args.pack}", ""]
    load = os.getloadavg()[0]

    vec: dict[Path, np.ndarray] = {}
    for ps in identities.values():
        for p in ps:
            v = emb(p)
            if v is not None:
                vec[p] = np.asarray(v, dtype=np.float32)

    # --- 1. negatives ------------------------------------------------------------------
    enrolled = [(name, ps) for name, ps in identities.items() if len(ps) >= 2 and ps[0] in vec]
    gallery = np.stack([vec[ps[0]] for _, ps in enrolled])
    n = len(gallery)
    limits = {
        "identify's default (gallery FPR 1%)": table.distance_for_gallery(0.01, n),
        "a lax threshold (per-pair FMR 1e-2)": table.distance_for_fmr(1e-2),
        "a very lax threshold (per-pair FMR 1e-1)": table.distance_for_fmr(1e-1),
    }
    rules = {f"radius FMR {f:g}": ("radius", table.distance_for_fmr(f)) for f in (1e-2, 1e-3, 1e-4)}
    rules["closer to negative"] = ("relative", 0.0)
    for f in (1e-3, 1e-4):
        rules[f"either, radius FMR {f:g}"] = ("either", table.distance_for_fmr(f))
    lines += [f"## Never-match corrections (load {load:.2f})", "", f"Gallery: {n} persons.", ""]
    for title, limit in limits.items():
        cases = []
        for li, (_, ps) in enumerate(enrolled):
            if len(ps) < 3:
                continue
            d = np.linalg.norm(gallery - vec[ps[0]], axis=1)
            d[li] = np.inf
            pi = int(np.argmin(d))
            if d[pi] <= limit:  # L's first photo is wrongly matched to P: the case to correct
                cases.append((li, pi))
        stats = {k: Counter() for k in rules}
        for li, pi in cases:
            neg = vec[enrolled[li][1][0]]
            pface = gallery[pi]
            for who, photos in (("lookalike", enrolled[li][1][1:]), ("own", enrolled[pi][1][1:])):
                for p in photos:
                    if p not in vec:
                        continue
                    d_p = float(np.linalg.norm(vec[p] - pface))
                    if d_p > limit:
                        continue  # not matched to P anyway
                    d_n = float(np.linalg.norm(vec[p] - neg))
                    for k, (kind, r) in rules.items():
                        stats[k][who] += 1
                        stats[k][who + "_vetoed"] += _vetoed(kind, r, d_n, d_p)
        lines += [
            f"### Matching distance {limit:.4f}: {title}",
            "",
            f"{len(cases)} look-alikes (3+ photos) whose first photo is matched to another person, "
            "corrected once with that photo.",
            "",
            "| veto rule | look-alike's further photos matched to P | vetoed (good) "
            "| P's own photos matched to P | vetoed (bad) |",
            "|---|---|---|---|---|",
        ]
        for k, c in stats.items():
            la, own = c["lookalike"], c["own"]
            lines.append(
                f"| {k} | {la} | {c['lookalike_vetoed']} ({_pct(c['lookalike_vetoed'], la)}) | {own} | "
                f"{c['own_vetoed']} ({_pct(c['own_vetoed'], own)}) |"
            )
        lines.append("")

    # --- 2. clustering -----------------------------------------------------------------
    photos = [p for ps in identities.values() for p in ps if p in vec]
    truth = [p.parent.name for p in photos]
    x = np.stack([vec[p] for p in photos])
    lines += [
        f"## Clustering {len(photos)} faces of {len(set(truth))} identities (load {os.getloadavg()[0]:.2f})",
        "",
        "| edge distance (per-pair FMR) | clusters | purity | inverse purity | homogeneity | completeness "
        "| seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in (1e-3, 1e-4, 1e-5, 1e-6):  # the service uses CLUSTER_FMR
        r = table.distance_for_fmr(f)
        t0 = time.perf_counter()
        labels = cluster_labels(x, r)
        secs = time.perf_counter() - t0
        s = cluster_scores(truth, labels)
        lines.append(
            f"| {r:.4f} ({f:g}) | {int(s['clusters'])} | {s['purity']:.4f} | {s['inverse_purity']:.4f} | "
            f"{s['homogeneity']:.4f} | {s['completeness']:.4f} | {secs:.2f} |"
        )
    # One person seen 5,000 times (jittered copies of one face) beside the dev faces: the bounded graph.
    rng = np.random.default_rng(0)
    one = x[0] + 0.02 * rng.standard_normal((5000, x.shape[1])).astype(np.float32)
    t0 = time.perf_counter()
    labels = cluster_labels(one, table.distance_for_fmr(1e-5))
    lines += [
        "",
        f"One face seen 5,000 times (jittered copies): {len(set(labels.tolist()))} cluster(s) in "
        f"{time.perf_counter() - t0:.2f} s (each face keeps at most {MAX_NEIGHBOURS} neighbours).",
    ]
    lines += ["", f"load average after: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


def _pct(part: int, whole: int) -> str:
    return "n/a" if whole == 0 else f"{100 * part / whole:.1f}%"


def _vetoed(kind: str, radius: float, d_neg: float, d_person: float) -> bool:
    if kind == "radius":
        return d_neg <= radius
    if kind == "relative":
        return d_neg < d_person
    return d_neg <= radius or d_neg < d_person


if __name__ == "__main__":
    main()
