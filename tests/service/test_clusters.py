"""The clustering of unknown faces: graph bounds and labels (no models)."""

from __future__ import annotations

import numpy as np

from facesearch.service.clusters import MAX_NEIGHBOURS, cluster_labels, edges_within


def test_separate_people_get_separate_clusters() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((4, 64)).astype(np.float32) * 3
    faces = np.concatenate([c + 0.05 * rng.standard_normal((10, 64)).astype(np.float32) for c in centres])
    labels = cluster_labels(faces, 1.5)
    assert len(set(labels.tolist())) == 4
    assert all(len(set(labels[i * 10 : (i + 1) * 10].tolist())) == 1 for i in range(4))
    assert cluster_labels(np.empty((0, 64), np.float32), 1.0).shape == (0,)


def test_one_person_seen_thousands_of_times_keeps_the_graph_small() -> None:
    rng = np.random.default_rng(2)
    faces = np.ones((3000, 32), np.float32) + 0.01 * rng.standard_normal((3000, 32)).astype(np.float32)
    edges = edges_within(faces, 10.0)
    assert len(edges) <= 3000 * (MAX_NEIGHBOURS + 1)  # not the 4.5 million pairs within the distance
    assert all(i <= j for i, j in edges)
    assert len(set(cluster_labels(faces, 10.0).tolist())) == 1


def test_a_face_alone_is_its_own_cluster() -> None:
    faces = np.array([[0.0, 0.0], [10.0, 10.0], [0.1, 0.0]], np.float32)
    labels = cluster_labels(faces, 1.0)
    assert labels[0] == labels[2] != labels[1]
