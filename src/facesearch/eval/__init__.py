"""Model-agnostic evaluation: verification/identification metrics, LFW protocols, FMR calibration.

Scores are distances (lower = more alike) unless a function says otherwise.
"""

from facesearch.eval.calibration import (
    SIMILARITY_DECADES,
    CalibrationTable,
    fit_calibration,
    fmr_for_similarity,
    similarity_for_fmr,
)
from facesearch.eval.metrics import (
    KFoldResult,
    accuracy_at,
    best_threshold,
    cosine_distance,
    equal_error_rate,
    euclidean,
    fnir_at_fpir,
    kfold_accuracy,
    pairwise_distances,
    rank_k_rate,
    roc_auc,
    search_gallery,
    tar_at_far,
)
from facesearch.eval.protocols import (
    IdentificationReport,
    IdSplit,
    Pair,
    PairsList,
    Sample,
    VerificationReport,
    evaluate_identification,
    evaluate_verification,
    identification_split,
    pair_distances,
    read_identities,
    read_pairs,
)

__all__ = [
    "SIMILARITY_DECADES",
    "CalibrationTable",
    "IdSplit",
    "IdentificationReport",
    "KFoldResult",
    "Pair",
    "PairsList",
    "Sample",
    "VerificationReport",
    "accuracy_at",
    "best_threshold",
    "cosine_distance",
    "equal_error_rate",
    "euclidean",
    "evaluate_identification",
    "evaluate_verification",
    "fit_calibration",
    "fmr_for_similarity",
    "fnir_at_fpir",
    "identification_split",
    "kfold_accuracy",
    "pair_distances",
    "pairwise_distances",
    "rank_k_rate",
    "read_identities",
    "read_pairs",
    "roc_auc",
    "search_gallery",
    "similarity_for_fmr",
    "tar_at_far",
]
