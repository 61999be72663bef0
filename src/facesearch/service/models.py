"""The service's door to the pipeline: model packs by name, and photos turned into faces."""

from __future__ import annotations

import threading

from facesearch.config import PackConfig
from facesearch.pipeline import AnalyseOptions, Analysis, ModelPack, build_pack
from facesearch.pipeline.analyzer import AnalyseRequest, Analyzer, LocalAnalyzer
from facesearch.pipeline.packs import resolve_pack_name


class Models:
    """Packs built once by name (their models load on first use) and the analyzer that runs them.

    ``packs`` are packs given ready-made (tests, custom packs); others are built with ``config``.
    ``analyzer`` runs the pipeline (default: in this process, with these packs); the limits are
    the upload byte and decoded-pixel limits every photo is held to.
    """

    def __init__(
        self,
        config: PackConfig,
        *,
        max_bytes: int,
        max_pixels: int,
        packs: dict[str, ModelPack] | None = None,
        analyzer: Analyzer | None = None,
    ) -> None:
        self._config = config
        self._packs: dict[str, ModelPack] = dict(packs or {})
        self._lock = threading.Lock()
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.analyzer: Analyzer = analyzer or LocalAnalyzer(self.pack)

    def resolve(self, name: str) -> str:
        """A pack name, with ``auto`` replaced by the most accurate installed pack."""
        return resolve_pack_name(name, self._config)

    def pack(self, name: str) -> ModelPack:
        """The model pack of that name (ValidationError for an unknown name)."""
        with self._lock:
            if name not in self._packs:
                self._packs[name] = build_pack(name, self._config)
            return self._packs[name]

    def analyse(self, pack: str, data: bytes, options: AnalyseOptions) -> Analysis:
        """The faces of one photo, found and embedded by ``pack`` (raises FaceSearchError)."""
        request = AnalyseRequest(pack, data, self.max_bytes, self.max_pixels, options)
        return self.analyzer.analyse(request)

    def require_liveness(self, pack: str, wanted: bool) -> None:
        """Refuse before any work when liveness is asked for and the pack cannot check it."""
        if wanted:
            self.pack(pack).require_liveness()

    def workers(self) -> dict[str, object]:
        """The analyzer's state for the health route: its worker pool's, or "in-process"."""
        state = getattr(self.analyzer, "state", None)
        return dict(state()) if callable(state) else {"state": "in-process"}

    def close(self) -> None:
        """Stop the analyzer (its worker processes, if any)."""
        self.analyzer.close()
