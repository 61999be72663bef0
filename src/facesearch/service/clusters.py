"""Clustering of unknown faces into likely-same-person groups.

The method is Chinese whispers (Biemann 2006) as dlib implements it (``dlib.chinese_whispers``,
already a dependency; it is what dlib's own face-clustering example uses): faces are the
vertices of a graph with an edge between two faces closer than a distance, and each vertex
repeatedly takes the most common label of its neighbours. The number of clusters is not fixed in
advance, and one stray edge does not chain two people together as it does in single-linkage
clustering. The edge distance is the pack's calibrated distance at a per-pair false-match rate
(``CLUSTER_FMR``, chosen on the LFW development set by ``bench/clusters.py``; the README has
the table), so the rule means the same for every pack.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Per-pair false-match rate of the edge distance (see bench/clusters.py and the README).
CLUSTER_FMR = 1e-5
#: Faces compared per block when building the graph (bounds the memory of one step).
_BLOCK = 512


def edges_within(vectors: npt.NDArray[np.float32], max_distance: float) -> list[tuple[int, int]]:
    """Every pair (i, j), i <= j, of rows closer than ``max_distance`` (Euclidean), self-pairs
    included so that a face alone still gets a cluster of its own."""
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    limit = float(max_distance) ** 2
    out: list[tuple[int, int]] = [(i, i) for i in range(n)]
    for start in range(0, n, _BLOCK):
        block = x[start : start + _BLOCK]
        d2 = sq[start : start + _BLOCK, None] + sq[None, :] - 2.0 * (block @ x.T)
        rows, cols = np.nonzero(d2 < limit)
        rows = rows + start
        keep = cols > rows
        out.extend(zip(rows[keep].tolist(), cols[keep].tolist(), strict=True))
    return out


def cluster_labels(vectors: npt.NDArray[np.float32], max_distance: float) -> npt.NDArray[np.int64]:
    """A cluster label per row (labels are arbitrary integers); empty input: empty output."""
    if len(vectors) == 0:
        return np.empty(0, dtype=np.int64)
    import dlib

    labels = dlib.chinese_whispers(edges_within(vectors, max_distance))
    return np.asarray(labels, dtype=np.int64)
