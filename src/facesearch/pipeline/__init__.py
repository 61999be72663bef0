"""The face pipeline: Protocols, model packs and the runner that applies them."""

from facesearch.pipeline.base import Aligner, Detector, Embedder, ModelPack, QualityChecker
from facesearch.pipeline.packs import PACK_NAMES, build_pack
from facesearch.pipeline.runner import WORK_MAX_SIDE, Analysis, FaceChoice, FacePipeline, Timings, choose_face

__all__ = [
    "PACK_NAMES",
    "WORK_MAX_SIDE",
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
