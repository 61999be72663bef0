"""Clustering of unknown faces into likely-same-person groups.

The method is Chinese whispers (Biemann 2006) as dlib implements it (``dlib.chinese_whispers``,
already a dependency; it is what dlib's own face-clustering example uses): faces are the
vertices of a graph with an edge between two faces closer than a distance, and each vertex
repeatedly takes the most common label of its neighbours. The number of clusters is not fixed in
advance, and one stray edge does not chain two people together as it does in single-linkage
clustering. Each face keeps edges to its nearest ``MAX_NEIGHBOURS`` within the distance (a
k-nearest-neighbour graph), which bounds the work when one person is seen thousands of times.
The edge distance is the pack's calibrated distance at a per-pair false-match rate
(``CLUSTER_FMR``, chosen on the LFW development set by ``bench/corrections.py``; the README has
the table), so the rule means the same for every pack.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Per-pair false-match rate of the edge distance (see bench/clusters.py and the README).
CLUSTER_FMR = 1e-5
#: Each face keeps edges to at most this many nearest faces within the distance, so the graph of
#: one person seen thousands of times stays small (5,000 faces: at most 160,000 edges, not 12.5M).
MAX_NEIGHBOURS = 32
#: Faces compared per block when building the graph (bounds the memory of one step).
_BLOCK = 512


def edges_within(
    vectors: npt.NDArray[np.float32], max_distance: float, max_neighbours: int = MAX_NEIGHBOURS
) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of rows closer than ``max_distance`` (Euclidean), each row keeping
    its ``max_neighbours`` nearest (a pair is kept when either end keeps it), plus self-pairs so
    that a face alone still gets a cluster of its own."""
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    limit = float(max_distance) ** 2
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, _BLOCK):
        block = x[start : start + _BLOCK]
        d2 = sq[start : start + _BLOCK, None] + sq[None, :] - 2.0 * (block @ x.T)
        d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        if n - 1 > max_neighbours:
            nearest = np.argpartition(d2, max_neighbours, axis=1)[:, :max_neighbours]
        else:
            nearest = np.broadcast_to(np.arange(n), (len(block), n))
        close = np.take_along_axis(d2, nearest, axis=1) < limit
        rows = np.broadcast_to(np.arange(start, start + len(block))[:, None], nearest.shape)[close]
        cols = nearest[close]
        pairs.update(zip(np.minimum(rows, cols).tolist(), np.maximum(rows, cols).tolist(), strict=True))
    return [(i, i) for i in range(n)] + sorted(pairs)


def cluster_labels(vectors: npt.NDArray[np.float32], max_distance: float) -> npt.NDArray[np.int64]:
    """A cluster label per row (labels are arbitrary integers); empty input: empty output."""
    if len(vectors) == 0:
        return np.empty(0, dtype=np.int64)
    import dlib

    labels = dlib.chinese_whispers(edges_within(vectors, max_distance))
    return np.asarray(labels, dtype=np.int64)
