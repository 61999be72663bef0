"""Helpers shared by the storage tests (a unique module name, unlike conftest)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facesearch.domain import Box


def vec(seed: int, dim: int = 128) -> npt.NDArray[np.float32]:
    """A deterministic unit vector."""
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


BOX = Box(10, 20, 100, 120)
