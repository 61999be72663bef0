"""The explicit registry of model packs."""

from __future__ import annotations

from facesearch.errors import ValidationError
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.calibration import pack_scale
from facesearch.pipeline.dlib_pack import DlibAligner, DlibDetector, DlibEmbedder, DlibModels
from facesearch.pipeline.flip import FlipEmbedder
from facesearch.pipeline.onnx_pack import build_onnx_pack, optional_fallback_detector, optional_liveness
from facesearch.pipeline.quality import BasicQualityChecker
from facesearch.pipeline.similarity import LogisticSimilarity

PACK_NAMES = ("dlib", "dlib-flip", "onnx", "fusion")

# dlib's ResNet descriptor: about 0.6 Euclidean distance is the usual decision point.
# Provisional: used only when pipeline/calibration/<pack>.json is missing (`facesearch eval calibrate`).
DLIB_SIMILARITY = LogisticSimilarity(midpoint=0.6, scale=0.06)
DLIB_FLIP_SIMILARITY = LogisticSimilarity(midpoint=0.42, scale=0.042)  # unit-length embeddings


def build_pack(name: str) -> ModelPack:
    """Build a model pack by name; models load lazily on first use."""
    match name:
        case "dlib" | "dlib-flip":
            models = DlibModels()
            fallback = DLIB_SIMILARITY if name == "dlib" else DLIB_FLIP_SIMILARITY
            scale = pack_scale(name, fallback.similarity, fallback.distance_for, 0.5)
            embedder = DlibEmbedder(models)
            return ModelPack(
                name=name,
                detector=DlibDetector(models),
                aligner=DlibAligner(models),
                embedder=embedder if name == "dlib" else FlipEmbedder(embedder),
                quality=BasicQualityChecker(),
                similarity=scale.similarity,
                distance_for_similarity=scale.distance_for_similarity,
                default_threshold=scale.default_threshold,
                liveness=optional_liveness(),  # available once `facesearch models install onnx` ran
                fallback_detector=optional_fallback_detector(models),  # idem; only when HOG finds nothing
            )
        case "onnx" | "fusion":
            return build_onnx_pack(name)  # ModelUnavailable naming the install command if missing
        case _:
            raise ValidationError(
                f"unknown model pack {name!r}; known packs: {', '.join(PACK_NAMES)}", field="pack"
            )
