"""The face pipeline: Protocols, model packs and the runner that applies them."""

from facesearch.domain import FaceChoice
from facesearch.pipeline.base import Aligner, Detector, Embedder, ModelPack, QualityChecker
from facesearch.pipeline.packs import PACK_NAMES, build_pack
from facesearch.pipeline.runner import (
    WORK_MAX_SIDE,
    AnalyseOptions,
    Analysis,
    FacePipeline,
    Timings,
    choose_face,
)

__all__ = [
    "PACK_NAMES",
    "WORK_MAX_SIDE",
    "AnalyseOptions",
    "Aligner",
    "Analysis",
    "Detector",
    "Embedder",
    "FaceChoice",
    "FacePipeline",
    "ModelPack",
    "QualityChecker",
    "Timings",
    "build_pack",
    "choose_face",
]
