"""The provisional distance <-> similarity mapping of a pack that ships no calibration table.

Every shipped pack has a measured table (``pipeline/calibration/<pack>.json``), which defines
its similarity scale; this logistic curve is the fallback for a pack without one (a new pack
before ``facesearch eval calibrate`` has measured it): centred on the pack's usual decision
distance, so similarity 0.5 sits at that distance (0.6 for dlib), monotonic in distance and
within [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LogisticSimilarity:
    """similarity = 1 / (1 + exp((distance - midpoint) / scale))."""

    midpoint: float
    scale: float

    def similarity(self, distance: float) -> float:
        """Similarity in [0, 1]; higher means more alike."""
        if math.isinf(distance) or math.isnan(distance):
            return 0.0
        z = (distance - self.midpoint) / self.scale
        if z > 50:
            return 0.0
        if z < -50:
            return 1.0
        return 1.0 / (1.0 + math.exp(z))

    def distance_for(self, similarity: float) -> float:
        """The distance at which a pair reaches ``similarity`` (inverse of :meth:`similarity`)."""
        s = min(max(similarity, 1e-12), 1.0 - 1e-12)
        return self.midpoint + self.scale * math.log(1.0 / s - 1.0)
