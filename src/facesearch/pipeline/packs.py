"""The explicit registry of model packs."""

from __future__ import annotations

from facesearch.errors import ValidationError
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.dlib_pack import DlibAligner, DlibDetector, DlibEmbedder, DlibModels
from facesearch.pipeline.quality import BasicQualityChecker
from facesearch.pipeline.similarity import LogisticSimilarity

PACK_NAMES = ("dlib",)

# dlib's ResNet descriptor: about 0.6 Euclidean distance is the usual decision point.
DLIB_SIMILARITY = LogisticSimilarity(midpoint=0.6, scale=0.06)


def build_pack(name: str) -> ModelPack:
    """Build a model pack by name; models load lazily on first use."""
    match name:
        case "dlib":
            models = DlibModels()
            return ModelPack(
                name="dlib",
                detector=DlibDetector(models),
                aligner=DlibAligner(models),
                embedder=DlibEmbedder(models),
                quality=BasicQualityChecker(),
                similarity=DLIB_SIMILARITY.similarity,
                distance_for_similarity=DLIB_SIMILARITY.distance_for,
                default_threshold=0.5,
            )
        case _:
            raise ValidationError(
                f"unknown model pack {name!r}; known packs: {', '.join(PACK_NAMES)}", field="pack"
            )
