"""Per-pack calibration tables (distance -> false-match rate), shipped as ``<pack>.json`` here.

A table is measured by ``facesearch eval calibrate --pack P --images DIR`` (see README
"Accuracy"): it maps a pack's raw embedding distance to the false-match rate (FMR) per comparison,
and through it to the similarity every API result reports, ``clip(-log10(FMR) / 6, 0, 1)``
(0.5 = one false match in 1,000 comparisons). The table also carries the pack's default
threshold (``meta["default_threshold"]``, on the similarity scale).

``build_pack`` reads the table of a pack once, when it builds the pack, and the pack carries it
(``ModelPack.calibration``); nothing here keeps state. A pack without a table keeps its
provisional mapping (``pipeline/similarity.py``) and cannot take ``max_false_positive_rate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facesearch.pipeline.calibration.table import CalibrationTable
from facesearch.pipeline.similarity import LogisticSimilarity

CALIBRATION_DIR = Path(__file__).resolve().parent
_PACK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def table_path(pack: str, directory: Path | None = None) -> Path:
    """Where the table of ``pack`` lives (``<directory>/<pack>.json``)."""
    if not _PACK_NAME_RE.match(pack):
        raise ValueError(f"not a model pack name: {pack!r}")
    return (directory or CALIBRATION_DIR) / f"{pack}.json"


def load_calibration(pack: str) -> CalibrationTable | None:
    """The shipped calibration table of a pack, or None when it has none (read from disk)."""
    try:
        path = table_path(pack)
    except ValueError:
        return None
    return CalibrationTable.from_json(path.read_text("utf-8")) if path.is_file() else None


@dataclass(frozen=True)
class PackScale:
    """What a ModelPack takes from its calibration: the similarity mapping, the default
    threshold and the table itself (None: the provisional mapping)."""

    similarity: Callable[[float], float]
    distance_for_similarity: Callable[[float], float]
    default_threshold: float
    table: CalibrationTable | None


def pack_scale(pack: str, fallback: LogisticSimilarity, fallback_threshold: float = 0.5) -> PackScale:
    """The calibrated scale of ``pack`` when it ships a table, else the provisional ``fallback``."""
    table = load_calibration(pack)
    if table is None:
        return PackScale(fallback.similarity, fallback.distance_for, fallback_threshold, None)
    default = float(table.meta.get("default_threshold", fallback_threshold))
    return PackScale(table.similarity, table.distance_for_similarity, default, table)


__all__ = ["CALIBRATION_DIR", "CalibrationTable", "PackScale", "load_calibration", "pack_scale", "table_path"]
