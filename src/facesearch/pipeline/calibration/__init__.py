"""Per-pack calibration tables (distance -> false-match rate), shipped as ``<pack>.json`` here.

A table is measured by ``facesearch eval calibrate --pack P --images DIR`` (see README
"Accuracy"): it maps a pack's raw embedding distance to the false-match rate (FMR) per comparison,
and through it to the similarity every API result reports, ``clip(-log10(FMR) / 6, 0, 1)``
(0.5 = one false match in 1,000 comparisons). The table also carries the pack's default
threshold (``meta["default_threshold"]``, on the similarity scale).

Any pack can carry a table: drop ``<pack name>.json`` in this folder, or call
:func:`register_calibration` for a pack built elsewhere. A pack without one keeps its
provisional mapping and cannot take ``max_false_positive_rate``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facesearch.eval.calibration import CalibrationTable

CALIBRATION_DIR = Path(__file__).resolve().parent
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_registered: dict[str, CalibrationTable] = {}
_loaded: dict[str, CalibrationTable | None] = {}
_lock = threading.Lock()


def table_path(pack: str, directory: Path | None = None) -> Path:
    """Where the table of ``pack`` lives (``<directory>/<pack>.json``)."""
    if not _NAME_RE.match(pack):
        raise ValueError(f"not a model pack name: {pack!r}")
    return (directory or CALIBRATION_DIR) / f"{pack}.json"


def load_calibration(pack: str) -> CalibrationTable | None:
    """The calibration table of a pack (registered, else shipped), or None; read once."""
    if pack in _registered:
        return _registered[pack]
    with _lock:
        if pack not in _loaded:
            try:
                path = table_path(pack)
            except ValueError:
                _loaded[pack] = None
            else:
                _loaded[pack] = (
                    CalibrationTable.from_json(path.read_text("utf-8")) if path.is_file() else None
                )
        return _loaded[pack]


def register_calibration(pack: str, table: CalibrationTable | None) -> None:
    """Use ``table`` for ``pack`` in this process (None: forget it, fall back to the shipped file)."""
    if table is None:
        _registered.pop(pack, None)
    else:
        _registered[pack] = table


def forget_loaded() -> None:
    """Re-read shipped tables on next use (after ``eval calibrate`` wrote a new one)."""
    with _lock:
        _loaded.clear()


def pack_calibration(pack: Any) -> CalibrationTable | None:
    """The table of a model pack: its own ``calibration`` attribute, else the one for its name."""
    table = getattr(pack, "calibration", None)
    if isinstance(table, CalibrationTable):
        return table
    name = getattr(pack, "name", None)
    return load_calibration(name) if isinstance(name, str) else None


@dataclass(frozen=True)
class PackScale:
    """What a ModelPack needs from its calibration: the similarity mapping and default threshold."""

    similarity: Callable[[float], float]
    distance_for_similarity: Callable[[float], float]
    default_threshold: float
    table: CalibrationTable | None


def pack_scale(
    pack: str,
    fallback_similarity: Callable[[float], float],
    fallback_distance_for_similarity: Callable[[float], float],
    fallback_threshold: float,
) -> PackScale:
    """The calibrated scale of ``pack`` when it has a table, else the provisional fallback."""
    table = load_calibration(pack)
    if table is None:
        return PackScale(fallback_similarity, fallback_distance_for_similarity, fallback_threshold, None)
    default = table.meta.get("default_threshold", fallback_threshold)
    return PackScale(table.similarity, table.distance_for_similarity, float(default), table)


__all__ = [
    "CALIBRATION_DIR",
    "PackScale",
    "forget_loaded",
    "load_calibration",
    "pack_calibration",
    "pack_scale",
    "register_calibration",
    "table_path",
]
