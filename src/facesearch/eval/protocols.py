"""Evaluation protocols: LFW-style verification pairs and a closed/open-set identification split.

Verification (``read_pairs`` + ``evaluate_verification``)
    ``pairs.txt`` (first line ``10 300``: 10 folds, each 300 matched then 300 mismatched lines) is
    scored by 10-fold cross-validation: for each fold the accuracy-maximising threshold is chosen on
    the other 9 folds and accuracy is measured on the held-out fold; mean and std (ddof=0) are
    reported. A single-list file (first line ``N``: N matched then N mismatched lines, e.g.
    ``pairsDevTest.txt``) reports the accuracy at the best threshold on those same pairs (optimistic)
    and, when given, the accuracy at a fixed threshold. Matched lines are ``Name i j``, mismatched
    lines ``NameA i NameB j`` (tabs or spaces); image ``i`` of ``Name`` is
    ``images_dir/Name/Name_%04d.jpg``. ROC AUC, TAR at FAR 1e-3 and 1e-2 and the EER are computed over
    all pairs.

Identification (``read_identities`` + ``identification_split`` + ``evaluate_identification``)
    One folder per person, images sorted by file name. For every person with two or more photos,
    the first photo goes into the gallery and every other photo is a *mated* probe. Every person
    with exactly one photo is a *distractor*: that photo is in the gallery too, and is also used as a
    *non-mated* probe, searched leave-one-out, i.e. against the gallery without that person (so a
    non-mated probe never meets itself). Mated probes are searched against the whole gallery
    (enrolled persons + distractors); distances are reduced per identity (the closest gallery photo
    of each identity) and sorted ascending.

    * Closed set: the rank of a mated probe is the position of its own identity in that list, ties
      counted against it (rank = number of identities at distance <= the true one). Rank-1 and
      rank-5 rates are over all mated probes.
    * Open set (NIST FRVT 1:N): the threshold t is the largest with at most floor(FPIR * n) of the n
      non-mated probes having a top-1 distance <= t (the largest float below the next non-mated top-1
      distance); FNIR is the share of mated probes whose own identity is not
      at rank 1 with distance <= t. Reported at FPIR 1e-2 and 1e-3.
    * At given thresholds (``thresholds``, e.g. the ones the service would derive from a
      calibration table for this gallery's size): the observed FPIR (share of non-mated probes
      with a top-1 distance <= t) and FNIR.

    Variant with several enrolment photos (``enrol_photos`` = K > 1, to measure templates): persons
    with more than K photos enrol their first K photos and the rest are mated probes; one-photo
    persons are distractors as above; persons with 2..K photos are left out. A person is scored by
    the closest of their gallery photos (``template="best"``, what the service does) or by the
    distance to the mean of their gallery embeddings (``template="mean"``; the mean is scaled back to
    unit length when every gallery embedding has unit length).

Detection failures (``embed`` returns None)
    Each unique image is embedded once. Verification: a pair with a failed image gets distance +inf
    (predicted different) and stays in every denominator. Identification: a mated probe that fails
    is a miss (no rank, never a hit); a gallery photo that fails leaves that identity out of the
    gallery, so its mated probes are misses too (counted separately); a non-mated probe that fails
    returns no candidate, so it cannot be a false positive (top-1 distance +inf), as in FRVT.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from facesearch.eval.metrics import (
    accuracy_at,
    best_threshold,
    equal_error_rate,
    euclidean,
    fnir_at_fpir,
    kfold_accuracy,
    rank_k_rate,
    roc_auc,
    search_gallery,
    tar_at_far,
)

FloatArray = npt.NDArray[np.float64]
EmbedFn = Callable[[Path], npt.NDArray[Any] | None]
DistanceFn = Callable[[npt.NDArray[Any], npt.NDArray[Any]], float]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})

VERIFICATION_FAILURE_POLICY = (
    "a pair with an image whose face was not detected is scored distance=+inf (predicted different) "
    "and kept in every denominator"
)
IDENTIFICATION_FAILURE_POLICY = (
    "a mated probe without a detected face is a miss; a gallery photo without one leaves its identity "
    "out of the gallery (its mated probes become misses); a non-mated probe without one returns no "
    "candidate (top-1 distance +inf)"
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class _Report:
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become null)."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Pair:
    """Two image paths, whether they show the same person, and the fold (0-based) the pair is in."""

    path_a: Path
    path_b: Path
    same: bool
    fold: int


@dataclass(frozen=True, eq=False)
class PairsList:
    """Pairs in file order; ``folds[k]`` holds the indices of fold k (a single list is one fold)."""

    pairs: tuple[Pair, ...]
    folds: list[npt.NDArray[np.intp]]
    is_kfold: bool

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def same(self) -> npt.NDArray[np.bool_]:
        return np.array([p.same for p in self.pairs], dtype=np.bool_)


def _lfw_path(images_dir: Path, name: str, number: str, where: str) -> Path:
    if not (number.isascii() and number.isdigit()) or int(number) < 1:
        raise ValueError(f"{where}: image number must be a positive integer, got {number!r}")
    return images_dir / name / f"{name}_{int(number):04d}.jpg"


def read_pairs(pairs_file: Path, images_dir: Path) -> PairsList:
    """Read an LFW pairs file (header ``N`` or ``folds N``); ValueError names the bad line."""
    text = pairs_file.read_text(encoding="utf-8")
    lines = [(no, line) for no, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{pairs_file}: empty pairs file")
    head_no, head = lines[0]
    fields = head.split()
    if not 1 <= len(fields) <= 2 or not all(f.isascii() and f.isdigit() for f in fields):
        raise ValueError(f"{pairs_file}, line {head_no}: expected a header 'N' or 'folds N', got {head!r}")
    n_folds, per_kind = (1, int(fields[0])) if len(fields) == 1 else (int(fields[0]), int(fields[1]))
    if n_folds < 1 or per_kind < 1:
        raise ValueError(f"{pairs_file}, line {head_no}: fold count and pair count must be >= 1")
    body = lines[1:]
    expected = 2 * n_folds * per_kind
    if len(body) < expected:
        last = lines[-1][0]
        raise ValueError(
            f"{pairs_file}, line {last + 1}: file ends after {len(body)} pair lines, "
            f"the header promises {expected}"
        )
    if len(body) > expected:
        raise ValueError(f"{pairs_file}, line {body[expected][0]}: extra line after the {expected} pairs")

    pairs: list[Pair] = []
    folds: list[npt.NDArray[np.intp]] = []
    for k in range(n_folds):
        start = len(pairs)
        for same in (True, False):
            for _ in range(per_kind):
                no, line = body[len(pairs)]
                where = f"{pairs_file}, line {no}"
                tok = line.split()
                if same and len(tok) == 3:
                    a = _lfw_path(images_dir, tok[0], tok[1], where)
                    b = _lfw_path(images_dir, tok[0], tok[2], where)
                elif not same and len(tok) == 4:
                    a = _lfw_path(images_dir, tok[0], tok[1], where)
                    b = _lfw_path(images_dir, tok[2], tok[3], where)
                else:
                    want = "'Name i j' (matched pair)" if same else "'NameA i NameB j' (mismatched pair)"
                    raise ValueError(f"{where}: expected {want}, got {line.strip()!r}")
                pairs.append(Pair(a, b, same, k))
        folds.append(np.arange(start, len(pairs), dtype=np.intp))
    return PairsList(tuple(pairs), folds, n_folds > 1)


def read_identities(images_dir: Path) -> dict[str, list[Path]]:
    """One entry per person folder that holds images (.jpg/.jpeg/.png/.webp), images sorted by name."""
    if not images_dir.is_dir():
        raise NotADirectoryError(f"{images_dir} is not a directory")
    out: dict[str, list[Path]] = {}
    for person in sorted(p for p in images_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(
            f
            for f in person.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if photos:
            out[person.name] = photos
    return out


@dataclass(frozen=True)
class Sample:
    """One photo of one identity."""

    identity: str
    path: Path


@dataclass(frozen=True)
class IdSplit:
    """Gallery (enrolled first photos + distractors), mated probes, non-mated (distractor) probes."""

    gallery: tuple[Sample, ...]
    mated_probes: tuple[Sample, ...]
    nonmated_probes: tuple[Sample, ...]
    enrol_photos: int = 1
    left_out: tuple[str, ...] = ()  # identities with 2..enrol_photos photos (enrol_photos > 1)

    @property
    def n_enrolled(self) -> int:
        """Identities with mated probes."""
        return len({s.identity for s in self.mated_probes})

    @property
    def n_distractors(self) -> int:
        return len(self.nonmated_probes)


def identification_split(identities: Mapping[str, Sequence[Path]], enrol_photos: int = 1) -> IdSplit:
    """Split per the module docstring: first photo(s) enrolled, one-photo persons are distractors."""
    if enrol_photos < 1:
        raise ValueError(f"enrol_photos must be >= 1, got {enrol_photos}")
    gallery: list[Sample] = []
    mated: list[Sample] = []
    nonmated: list[Sample] = []
    left_out: list[str] = []
    for name in sorted(identities):
        photos = list(identities[name])
        if not photos:
            continue
        if len(photos) == 1:
            gallery.append(Sample(name, photos[0]))
            nonmated.append(Sample(name, photos[0]))
        elif len(photos) <= enrol_photos:
            left_out.append(name)
        else:
            gallery.extend(Sample(name, p) for p in photos[:enrol_photos])
            mated.extend(Sample(name, p) for p in photos[enrol_photos:])
    return IdSplit(tuple(gallery), tuple(mated), tuple(nonmated), enrol_photos, tuple(left_out))


def _embed_unique(paths: Sequence[Path], embed: EmbedFn) -> dict[Path, FloatArray | None]:
    cache: dict[Path, FloatArray | None] = {}
    for path in paths:
        if path in cache:
            continue
        vec = embed(path)
        if vec is None:
            cache[path] = None
            continue
        arr = np.asarray(vec, dtype=np.float64).ravel()
        if arr.size == 0 or not np.isfinite(arr).all():
            raise ValueError(f"embedding of {path} is empty or not finite")
        cache[path] = arr
    return cache


@dataclass(frozen=True)
class VerificationReport(_Report):
    """Verification results; ``accuracy`` is the k-fold mean when ``is_kfold``."""

    n_pairs: int
    n_same: int
    n_different: int
    n_images: int
    detection_failures: int
    pairs_affected: int
    failure_policy: str
    failed_images: tuple[str, ...]
    is_kfold: bool
    n_folds: int
    accuracy_protocol: str
    accuracy: float
    accuracy_std: float | None
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    threshold: float  # best threshold over all pairs
    fixed_threshold: float | None
    accuracy_at_fixed_threshold: float | None
    roc_auc: float
    tar_at_far_1e3: float
    threshold_at_far_1e3: float
    tar_at_far_1e2: float
    threshold_at_far_1e2: float
    eer: float
    eer_threshold: float


def pair_distances(
    pairs: PairsList, embed: EmbedFn, distance: DistanceFn = euclidean
) -> tuple[FloatArray, tuple[Path, ...]]:
    """Distance of every pair (+inf when an image failed detection) and the failed images."""
    cache = _embed_unique([p for pair in pairs.pairs for p in (pair.path_a, pair.path_b)], embed)
    d = np.empty(len(pairs.pairs), dtype=np.float64)
    for i, pair in enumerate(pairs.pairs):
        ea, eb = cache[pair.path_a], cache[pair.path_b]
        d[i] = math.inf if ea is None or eb is None else distance(ea, eb)
    failed = tuple(p for p, v in cache.items() if v is None)
    return d, failed


def evaluate_verification(
    pairs: PairsList,
    embed: EmbedFn,
    distance: DistanceFn = euclidean,
    *,
    fixed_threshold: float | None = None,
) -> VerificationReport:
    """Score every pair once per unique image and report the metrics in the module docstring."""
    d, failed = pair_distances(pairs, embed, distance)
    if not np.isfinite(d).any():
        raise ValueError("no pair could be scored: every pair has a detection failure")
    same = pairs.same
    failed_set = set(failed)
    n_images = len({p for pair in pairs.pairs for p in (pair.path_a, pair.path_b)})
    best = best_threshold(d, same)
    if pairs.is_kfold:
        kf = kfold_accuracy(d, same, pairs.folds)
        accuracy, std, fold_acc, fold_thr = kf.mean, kf.std, kf.accuracies, kf.thresholds
        protocol = (
            f"{len(pairs.folds)}-fold: threshold chosen on the other folds, accuracy on the held-out fold"
        )
    else:
        accuracy, std, fold_acc, fold_thr = accuracy_at(d, same, best), None, (), ()
        protocol = "single list: accuracy at the best threshold on these same pairs (optimistic)"
    fixed_acc = None if fixed_threshold is None else accuracy_at(d, same, fixed_threshold)
    tar3, thr3 = tar_at_far(d, same, 1e-3)
    tar2, thr2 = tar_at_far(d, same, 1e-2)
    eer, eer_thr = equal_error_rate(d, same)
    return VerificationReport(
        n_pairs=len(pairs.pairs),
        n_same=int(same.sum()),
        n_different=int((~same).sum()),
        n_images=n_images,
        detection_failures=len(failed),
        pairs_affected=sum(1 for p in pairs.pairs if p.path_a in failed_set or p.path_b in failed_set),
        failure_policy=VERIFICATION_FAILURE_POLICY,
        failed_images=tuple(str(p) for p in failed),
        is_kfold=pairs.is_kfold,
        n_folds=len(pairs.folds),
        accuracy_protocol=protocol,
        accuracy=accuracy,
        accuracy_std=std,
        fold_accuracies=fold_acc,
        fold_thresholds=fold_thr,
        threshold=best,
        fixed_threshold=fixed_threshold,
        accuracy_at_fixed_threshold=fixed_acc,
        roc_auc=roc_auc(d, same),
        tar_at_far_1e3=tar3,
        threshold_at_far_1e3=thr3,
        tar_at_far_1e2=tar2,
        threshold_at_far_1e2=thr2,
        eer=eer,
        eer_threshold=eer_thr,
    )


@dataclass(frozen=True)
class IdentificationReport(_Report):
    """Closed-set rank-1/rank-5 and open-set FNIR@FPIR (None when there are no non-mated probes)."""

    metric: str
    n_images: int
    n_gallery: int  # gallery photos with a detected face
    n_enrolled: int  # identities with mated probes
    n_distractors: int
    n_mated_probes: int
    n_nonmated_probes: int
    gallery_failures: int
    gallery_failed_identities: tuple[str, ...]
    mated_probe_failures: int
    mated_probes_without_gallery: int
    nonmated_probe_failures: int
    failure_policy: str
    rank1: float
    rank5: float
    fnir_at_fpir_1e2: float | None
    threshold_at_fpir_1e2: float | None
    fnir_at_fpir_1e3: float | None
    threshold_at_fpir_1e3: float | None
    enrol_photos: int = 1
    template: str = "best"
    n_gallery_identities: int = 0
    # (threshold, observed FPIR or None without non-mated probes, FNIR) for each asked threshold
    at_thresholds: tuple[tuple[float, float | None, float], ...] = ()


def _matrix(vectors: list[FloatArray | None], dim: int) -> FloatArray:
    rows = [v for v in vectors if v is not None]
    return np.vstack(rows).astype(np.float64) if rows else np.empty((0, dim))


def evaluate_identification(
    split: IdSplit,
    embed: EmbedFn,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    chunk_size: int = 1024,
    template: Literal["best", "mean"] = "best",
    thresholds: Sequence[float] = (),
) -> IdentificationReport:
    """Closed- and open-set identification per the module docstring (vectorised, chunked probes)."""
    if template not in ("best", "mean"):
        raise ValueError(f"template must be 'best' or 'mean', got {template!r}")
    if not split.mated_probes:
        raise ValueError("the split has no mated probes (nobody has two or more photos)")
    all_paths = [s.path for s in (*split.gallery, *split.mated_probes, *split.nonmated_probes)]
    cache = _embed_unique(all_paths, embed)
    if len({v.size for v in cache.values() if v is not None}) > 1:
        raise ValueError("embeddings differ in size")

    ok_gallery = [s for s in split.gallery if cache[s.path] is not None]
    enrolled_ids = {s.identity for s in ok_gallery}
    failed_ids = tuple(sorted({s.identity for s in split.gallery} - enrolled_ids))
    if not ok_gallery:
        raise ValueError("no gallery photo has a detected face")
    dim = next(v.size for v in cache.values() if v is not None)
    column = {name: i for i, name in enumerate(sorted(enrolled_ids))}
    gallery = _matrix([cache[s.path] for s in ok_gallery], dim)
    gallery_labels = [column[s.identity] for s in ok_gallery]
    if template == "mean":
        unit = bool(np.allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-3))
        sums = np.zeros((len(column), dim))
        np.add.at(sums, gallery_labels, gallery)
        gallery = sums / np.bincount(gallery_labels, minlength=len(column))[:, None]
        if unit:
            gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        gallery_labels = list(range(len(column)))

    def search(samples: Sequence[Sample]) -> tuple[list[int], npt.NDArray[np.int64], FloatArray, FloatArray]:
        """(detected rows, rank, own distance, leave-one-out top-1); undetected: rank 0, +inf, +inf."""
        rows = [i for i, s in enumerate(samples) if cache[s.path] is not None]
        labels = [column.get(samples[i].identity, -1) for i in rows]
        probes = _matrix([cache[samples[i].path] for i in rows], dim)
        found = search_gallery(probes, labels, gallery, gallery_labels, metric=metric, chunk_size=chunk_size)
        rank, (own, top1) = np.zeros(len(samples), dtype=np.int64), np.full((2, len(samples)), math.inf)
        rank[rows], own[rows], top1[rows] = found
        return rows, rank, own, top1

    mated = split.mated_probes
    detected, ranks, own_dist, _ = search(mated)
    searchable = sum(1 for i in detected if mated[i].identity in column)
    n_non = len(split.nonmated_probes)
    ok_non, _, _, top1 = search(split.nonmated_probes)

    correct = ranks == 1
    fnir: dict[float, tuple[float | None, float | None]] = {}
    for fpir in (1e-2, 1e-3):
        fnir[fpir] = fnir_at_fpir(correct, own_dist, top1, fpir) if n_non else (None, None)
    at_thresholds = tuple(
        (
            float(t),
            float(np.mean(top1 <= t)) if n_non else None,
            float(1.0 - np.mean(correct & (own_dist <= t))),
        )
        for t in thresholds
    )
    return IdentificationReport(
        metric=metric,
        n_images=len(cache),
        n_gallery=len(ok_gallery),
        n_enrolled=split.n_enrolled,
        n_distractors=split.n_distractors,
        n_mated_probes=len(mated),
        n_nonmated_probes=n_non,
        gallery_failures=len(split.gallery) - len(ok_gallery),
        gallery_failed_identities=failed_ids,
        mated_probe_failures=len(mated) - len(detected),
        mated_probes_without_gallery=len(detected) - searchable,
        nonmated_probe_failures=n_non - len(ok_non),
        failure_policy=IDENTIFICATION_FAILURE_POLICY,
        rank1=rank_k_rate(ranks, 1),
        rank5=rank_k_rate(ranks, 5),
        fnir_at_fpir_1e2=fnir[1e-2][0],
        threshold_at_fpir_1e2=fnir[1e-2][1],
        fnir_at_fpir_1e3=fnir[1e-3][0],
        threshold_at_fpir_1e3=fnir[1e-3][1],
        enrol_photos=split.enrol_photos,
        template=template,
        n_gallery_identities=len(column),
        at_thresholds=at_thresholds,
    )
