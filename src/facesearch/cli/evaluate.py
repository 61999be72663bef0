"""`facesearch eval verify | identify | calibrate`: accuracy figures measured with the real pipeline.

Every photo is embedded exactly as the service embeds a query (central face, same decoding), once:
embeddings are cached on disk by image SHA-256, pack and pipeline fingerprint (see
``facesearch.eval.embedcache``), so a second run only reads the cache.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from facesearch.cli.common import JsonOpt, handle_errors, print_json
from facesearch.errors import ValidationError

eval_app = typer.Typer(
    help="Measure accuracy on labelled photos: LFW pairs, 1:N identification, calibration.",
    no_args_is_help=True,
)

PackOpt = Annotated[str, typer.Option(help="model pack")]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="embedding cache folder (default: $FACESEARCH_CACHE_DIR or ~/.cache/facesearch/embeddings)",
    ),
]
WorkersOpt = Annotated[int, typer.Option(help="worker processes embedding photos not in the cache yet")]
ImagesOpt = Annotated[Path, typer.Option("--images", help="folder with one sub-folder of photos per person")]


def _progress(done: int, total: int) -> None:
    step = max(1, total // 20)
    if done == total or done % step == 0:
        typer.echo(f"  embedded {done:,}/{total:,} photos", err=True)


def open_embedder(pack: str, cache_dir: Path | None, workers: int) -> Any:
    """The cached photo embedder of a pack (a seam for tests)."""
    from facesearch.eval.embedcache import PhotoEmbedder

    return PhotoEmbedder(pack, cache_dir=cache_dir, workers=workers, progress=_progress)


def _check_files(paths: list[Path]) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise ValidationError(
            f"{len(missing)} photo(s) named by the protocol are missing, e.g. {shown}",
            field="images",
            details={"missing": len(missing)},
        )


def _table(embedder: Any) -> Any:
    return embedder.pack.calibration


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _dist(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _sim(table: Any, d: float | None) -> str:
    if table is None or d is None or not math.isfinite(d):
        return ""
    return f", similarity {table.similarity(d):.4f}"


def _embedding_info(embedder: Any) -> dict[str, Any]:
    return {
        "pack": embedder.pack.name,
        "pipeline_fingerprint": embedder.fingerprint,
        "cache_file": str(embedder.cache.path),
        "photos_embedded_now": embedder.embedded,
        "embedding_seconds": round(embedder.seconds, 1),
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- verify -------------------------------------------------------------------------------------


def run_verify(pairs_file: Path, images: Path, embedder: Any) -> dict[str, Any]:
    """The verification report of a pairs file as a JSON-ready dict (see ``evaluate_verification``)."""
    from facesearch.eval.protocols import evaluate_verification, read_pairs

    try:
        pairs = read_pairs(pairs_file, images)
    except (OSError, ValueError) as exc:
        raise ValidationError(str(exc), field="pairs") from None
    paths = sorted({p for pair in pairs.pairs for p in (pair.path_a, pair.path_b)})
    _check_files(paths)
    embedder.prepare(paths)
    pack = embedder.pack
    fixed = pack.distance_for_similarity(pack.default_threshold)
    report = evaluate_verification(pairs, embedder, fixed_threshold=fixed).to_dict()
    table = _table(embedder)
    out: dict[str, Any] = _finite(
        {
            "protocol": "LFW pairs",
            "pairs_file": str(pairs_file),
            "images": str(images),
            **_embedding_info(embedder),
            "default_threshold": pack.default_threshold,
            "calibrated": table is not None,
            **report,
        }
    )
    return out


def _print_verify(r: dict[str, Any], table: Any) -> None:
    kind = f"{r['n_folds']}-fold" if r["is_kfold"] else "single list"
    typer.echo(f"LFW pairs protocol, pack {r['pack']} (pipeline {r['pipeline_fingerprint']})")
    typer.echo(
        f"pairs:      {r['pairs_file']}: {kind}, {r['n_same']} same + {r['n_different']} different pairs, "
        f"{r['n_images']:,} photos"
    )
    typer.echo(
        f"embeddings: {r['n_images'] - r['photos_embedded_now']:,} from the cache, "
        f"{r['photos_embedded_now']:,} computed ({r['embedding_seconds']} s)"
    )
    typer.echo(
        f"detection failures: {r['detection_failures']} photo(s) without a detected face, "
        f"{r['pairs_affected']} pair(s) affected: {r['failure_policy']}"
    )
    for path in r["failed_images"]:
        typer.echo(f"  no face: {path}")
    if r["is_kfold"]:
        typer.echo(
            f"accuracy:   {_pct(r['accuracy'])} +- {_pct(r['accuracy_std'])} (mean +- std over folds; "
            f"{r['accuracy_protocol']})"
        )
        for k, (acc, thr) in enumerate(zip(r["fold_accuracies"], r["fold_thresholds"], strict=True), 1):
            typer.echo(f"  fold {k:2d}: {_pct(acc)} at distance {_dist(thr)}{_sim(table, thr)}")
    else:
        best = r["threshold"]
        typer.echo(
            f"accuracy:   {_pct(r['accuracy'])} at distance {_dist(best)}{_sim(table, best)} "
            f"({r['accuracy_protocol']})"
        )
    typer.echo(
        f"accuracy at the pack's default threshold (similarity {r['default_threshold']:.4f} = distance "
        f"{_dist(r['fixed_threshold'])}, not tuned on these pairs): {_pct(r['accuracy_at_fixed_threshold'])}"
    )
    typer.echo(f"ROC AUC:    {r['roc_auc']:.4f}")
    n_diff = r["n_different"]
    for far, key in ((1e-3, "1e3"), (1e-2, "1e2")):
        allowed = math.floor(far * n_diff + 1e-9)
        thr = r[f"threshold_at_far_{key}"]
        typer.echo(
            f"TAR @ FAR {far:g}: {_pct(r[f'tar_at_far_{key}'])} (distance <= {_dist(thr)}{_sim(table, thr)}; "
            f"{allowed} of {n_diff} different pairs may be accepted)"
        )
    typer.echo(f"EER:        {_pct(r['eer'])} (distance {_dist(r['eer_threshold'])})")


@eval_app.command("verify")
@handle_errors
def verify(
    pairs: Annotated[Path, typer.Option("--pairs", help="LFW pairs file ('N' or 'folds N' header)")],
    images: Annotated[Path, typer.Option("--images", help="folder holding Name/Name_NNNN.jpg")],
    pack: PackOpt = "dlib",
    as_json: JsonOpt = False,
    cache_dir: CacheOpt = None,
    workers: WorkersOpt = 2,
) -> None:
    """LFW pairs protocol: accuracy (k-fold when the file has folds), ROC AUC, TAR@FAR, EER.
    Example: facesearch eval verify --pack onnx"""
    embedder = open_embedder(pack, cache_dir, workers)
    report = run_verify(pairs, images, embedder)
    if as_json:
        print_json(report)
    else:
        _print_verify(report, _table(embedder))


# --- identify -----------------------------------------------------------------------------------

GALLERY_FPRS = (1e-2, 1e-3)


def run_identify(
    images: Path, embedder: Any, *, enrol_photos: int = 1, template: Literal["best", "mean"] = "best"
) -> dict[str, Any]:
    """The identification report of a folder-per-person set as a JSON-ready dict."""
    from facesearch.eval.protocols import evaluate_identification, identification_split, read_identities

    try:
        split = identification_split(read_identities(images), enrol_photos)
    except (OSError, ValueError) as exc:
        raise ValidationError(str(exc), field="images") from None
    if not split.mated_probes:
        raise ValidationError(
            "no person has more photos than are enrolled: nothing to identify", field="images"
        )
    paths = sorted({s.path for s in (*split.gallery, *split.mated_probes, *split.nonmated_probes)})
    embedder.prepare(paths)
    table = _table(embedder)
    n_gallery = sum(1 for s in split.gallery if embedder(s.path) is not None)
    asked: list[dict[str, Any]] = []
    thresholds: list[float] = []
    if table is not None and template == "best":
        for fpr in GALLERY_FPRS:
            per_comparison = table.fmr_for_gallery(fpr, max(1, n_gallery))
            thresholds.append(table.distance_for_fmr(per_comparison))
            asked.append(
                {
                    "max_false_positive_rate": fpr,
                    "fmr_per_comparison": per_comparison,
                    "similarity": round(table.threshold_for_gallery(fpr, max(1, n_gallery)), 6),
                }
            )
    report = evaluate_identification(split, embedder, template=template, thresholds=thresholds).to_dict()
    for item, (thr, fpir, fnir) in zip(asked, report.pop("at_thresholds"), strict=True):
        item.update({"distance": thr, "observed_fpir": fpir, "fnir": fnir})
    out: dict[str, Any] = _finite(
        {
            "protocol": "folder-per-person identification",
            "images": str(images),
            **_embedding_info(embedder),
            "n_identities": len({s.identity for s in (*split.gallery, *split.mated_probes)}),
            "left_out_identities": len(split.left_out),
            **report,
            "gallery_size_thresholds": asked,
        }
    )
    return out


def _print_identify(r: dict[str, Any], table: Any) -> None:
    k = r["enrol_photos"]
    typer.echo(f"Identification protocol, pack {r['pack']} (pipeline {r['pipeline_fingerprint']})")
    enrolled = "first photo" if k == 1 else f"first {k} photos, scored by the {r['template']} of them"
    typer.echo(
        f"set:        {r['images']}: {r['n_identities']:,} identities; {r['n_enrolled']:,} enrolled "
        f"({enrolled}), {r['n_distractors']:,} one-photo distractors"
        + (f", {r['left_out_identities']:,} left out (2..{k} photos)" if k > 1 else "")
    )
    typer.echo(
        f"            gallery {r['n_gallery']:,} faces of {r['n_gallery_identities']:,} identities; "
        f"{r['n_mated_probes']:,} mated probes; {r['n_nonmated_probes']:,} non-mated probes "
        "(the distractors, each searched without itself)"
    )
    typer.echo(
        f"embeddings: {r['n_images'] - r['photos_embedded_now']:,} from the cache, "
        f"{r['photos_embedded_now']:,} computed ({r['embedding_seconds']} s)"
    )
    typer.echo(
        f"detection failures: gallery {r['gallery_failures']} (identities not enrolled: "
        f"{len(r['gallery_failed_identities'])}), mated probes {r['mated_probe_failures']}, "
        f"non-mated probes {r['nonmated_probe_failures']}: {r['failure_policy']}"
    )
    typer.echo(f"closed set: rank-1 {_pct(r['rank1'])}, rank-5 {_pct(r['rank5'])} over all mated probes")
    for fpir, key in ((0.01, "1e2"), (0.001, "1e3")):
        thr = r[f"threshold_at_fpir_{key}"]
        allowed = math.floor(fpir * r["n_nonmated_probes"] + 1e-9)
        typer.echo(
            f"open set:   FNIR {_pct(r[f'fnir_at_fpir_{key}'])} at FPIR {fpir:g} "
            f"(distance <= {_dist(thr)}{_sim(table, thr)}; {allowed} of {r['n_nonmated_probes']:,} "
            "non-mated probes may match)"
        )
    if r["gallery_size_thresholds"]:
        typer.echo(
            f"calibrated thresholds for this gallery ({r['n_gallery']:,} faces), as the service sets them:"
        )
        for item in r["gallery_size_thresholds"]:
            typer.echo(
                f"  max_false_positive_rate {item['max_false_positive_rate']:g}: FMR "
                f"{item['fmr_per_comparison']:.3g} per comparison, similarity {item['similarity']:.4f} "
                f"(distance {_dist(item['distance'])}) -> observed FPIR "
                f"{_pct(item['observed_fpir'])}, FNIR {_pct(item['fnir'])}"
            )


@eval_app.command("identify")
@handle_errors
def identify(
    images: ImagesOpt,
    pack: PackOpt = "dlib",
    as_json: JsonOpt = False,
    cache_dir: CacheOpt = None,
    workers: WorkersOpt = 2,
    enrol_photos: Annotated[
        int, typer.Option("--enrol-photos", min=1, help="photos enrolled per person (1: the protocol)")
    ] = 1,
    template: Annotated[
        str, typer.Option(help="score a person by the 'best' of their faces or their 'mean' embedding")
    ] = "best",
) -> None:
    """Closed-set rank-1/rank-5 and open-set FNIR at FPIR 1% and 0.1% on a folder-per-person set.
    Example: facesearch eval identify --pack onnx"""
    if template not in ("best", "mean"):
        raise ValidationError("template must be 'best' or 'mean'", field="template")
    embedder = open_embedder(pack, cache_dir, workers)
    report = run_identify(images, embedder, enrol_photos=enrol_photos, template=template)  # type: ignore[arg-type]
    if as_json:
        print_json(report)
    else:
        _print_identify(report, _table(embedder))


# --- calibrate ----------------------------------------------------------------------------------


def run_calibrate(images: Path, embedder: Any, *, max_impostor_pairs: int = 20_000_000) -> Any:
    """Fit the pack's calibration table on a folder-per-person set (``calibrate_identities``)."""
    from facesearch.eval.fitting import calibrate_identities
    from facesearch.eval.protocols import read_identities

    try:
        identities = read_identities(images)
    except OSError as exc:
        raise ValidationError(str(exc), field="images") from None
    embedder.prepare([p for photos in identities.values() for p in photos])
    faces = {name: [embedder(p) for p in photos] for name, photos in identities.items()}
    meta = {
        "pack": embedder.pack.name,
        "pipeline_fingerprint": embedder.fingerprint,
        "data": images.name,
        "command": f"facesearch eval calibrate --pack {embedder.pack.name} --images {images}",
    }
    try:
        return calibrate_identities(faces, meta=meta, max_impostor_pairs=max_impostor_pairs)
    except ValueError as exc:
        raise ValidationError(f"cannot calibrate on {images}: {exc}", field="images") from None


@eval_app.command("calibrate")
@handle_errors
def calibrate(
    images: ImagesOpt,
    pack: PackOpt = "dlib",
    out: Annotated[
        Path | None,
        typer.Option(help="where to write the table (default: the pack's table in the installed package)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="measure and print, write nothing")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="measure the pack's shipped table on these photos; write nothing")
    ] = False,
    as_json: JsonOpt = False,
    cache_dir: CacheOpt = None,
    workers: WorkersOpt = 2,
) -> None:
    """Measure the pack's distance -> false-match-rate table on one half of the identities, check it
    on the other half, choose the default threshold, and store the table with the pack. With
    --check: the shipped table's claims against these photos' pairs, nothing fitted or written.
    Example: facesearch eval calibrate --pack onnx --check"""
    from facesearch.pipeline.calibration import table_path

    embedder = open_embedder(pack, cache_dir, workers)
    if check:
        _check_shipped(images, embedder, as_json)
        return
    result = run_calibrate(images, embedder)
    table = result.table
    target = out or table_path(pack)
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(table.to_json() + "\n", encoding="utf-8")
    meta = table.meta
    if as_json:
        print_json(_finite({"written": None if dry_run else str(target), **meta}))
        return
    typer.echo(f"Calibration of pack {pack} (pipeline {embedder.fingerprint}) on {images}")
    typer.echo(
        f"photos {meta['photos']:,} ({meta['photos_without_face']} without a face); identities: "
        f"{meta['fit_identities']:,} fit, {meta['heldout_identities']:,} held out ({meta['split']})"
    )
    typer.echo(
        f"pairs: fit {meta['fit_pairs']['impostor']:,} impostor + {meta['fit_pairs']['genuine']:,} genuine; "
        f"held out {meta['heldout_pairs']['impostor']:,} + {meta['heldout_pairs']['genuine']:,}"
    )
    typer.echo("held-out check (similarity = clip(-log10(FMR) / 6, 0, 1)):")
    for c in result.checks:
        typer.echo(
            f"  claimed FMR {c.claimed_fmr:g} (similarity {c.similarity:.4f}, distance {c.distance:.4f}): "
            f"observed {c.observed_fmr:.3g} ({c.false_matches:,} of {c.n_impostor:,}), FNMR {_pct(c.fnmr)}"
        )
    typer.echo(
        f"default threshold: similarity {meta['default_threshold']} = FMR {meta['default_threshold_fmr']:g}"
        f" per comparison, distance {meta['default_threshold_distance']:.4f}"
        f" ({meta['default_threshold_rule']})"
    )
    typer.echo("not written (--dry-run)" if dry_run else f"written: {target}")
    if not dry_run and out is None and "site-packages" in str(target):
        typer.echo(
            "note: written into the installed package; copy it to the source tree to keep it", err=True
        )
    sys.stdout.flush()


def _check_shipped(images: Path, embedder: Any, as_json: bool) -> None:
    from facesearch.eval.fitting import check_identities
    from facesearch.eval.protocols import read_identities

    table = _table(embedder)
    if table is None:
        raise ValidationError(f"model pack {embedder.pack.name!r} ships no calibration table", field="pack")
    try:
        identities = read_identities(images)
    except OSError as exc:
        raise ValidationError(str(exc), field="images") from None
    embedder.prepare([p for photos in identities.values() for p in photos])
    try:
        checks = check_identities(table, {n: [embedder(p) for p in ps] for n, ps in identities.items()})
    except ValueError as exc:
        raise ValidationError(f"cannot check on {images}: {exc}", field="images") from None
    report = {k: [c.to_dict() for c in v] for k, v in checks.items()}
    if as_json:
        print_json(_finite({"pack": embedder.pack.name, "images": str(images), "written": None, **report}))
        return
    typer.echo(f"Shipped table of pack {embedder.pack.name} checked on {images} (nothing written):")
    for key, title in (("heldout_checks", "held-out pairs"), ("stranger_checks", "pairs with strangers")):
        typer.echo(f"  {title}:")
        for c in checks[key]:
            ratio = c.observed_fmr / c.claimed_fmr
            typer.echo(
                f"    claimed FMR {c.claimed_fmr:g}: observed {c.observed_fmr:.3g} "
                f"({c.false_matches:,} of {c.n_impostor:,}; observed/claimed {ratio:.2f})"
            )


# --- open-set -----------------------------------------------------------------------------------


@eval_app.command("open-set")
@handle_errors
def open_set(
    images: ImagesOpt,
    pack: Annotated[str, typer.Option(help="model pack (default: the service's default, auto)")] = "auto",
    galleries: Annotated[
        str, typer.Option(help="gallery sizes in persons, comma-separated; 'all': every candidate")
    ] = "50,200,500,all",
    settings: Annotated[
        str | None, typer.Option(help="collection settings as JSON (default: none, so the defaults)")
    ] = None,
    enrol_photos: Annotated[
        int, typer.Option(min=1, max=20, help="photos enrolled per gallery person (the first ones)")
    ] = 1,
    as_json: JsonOpt = False,
    cache_dir: CacheOpt = None,
    workers: WorkersOpt = 2,
) -> None:
    """Strangers named and genuine persons found through the service on default settings, per
    gallery size and probe face size (identities split in two: a gallery half and strangers).
    Example: facesearch eval open-set --pack onnx"""
    import json

    from facesearch.config import Settings
    from facesearch.eval.openset import format_open_set, open_set_split, run_open_set
    from facesearch.eval.protocols import read_identities
    from facesearch.pipeline.packs import resolve_pack_name

    bad = ValidationError("galleries must be whole numbers or 'all', comma-separated", field="galleries")
    try:
        sizes = [0 if g.strip() == "all" else int(g) for g in galleries.split(",") if g.strip()]
    except ValueError:
        raise bad from None
    if not sizes or any(s < 0 for s in sizes):
        raise bad
    try:
        parsed = json.loads(settings) if settings else None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--settings is not valid JSON: {exc}", field="settings") from None
    try:
        identities = read_identities(images)
    except (OSError, ValueError) as exc:
        raise ValidationError(str(exc), field="images") from None
    split = open_set_split(identities)
    if not split.candidates or not split.strangers:
        raise ValidationError("too few identities to split into a gallery and strangers", field="images")
    embedder = open_embedder(resolve_pack_name(pack, Settings().pack_config()), cache_dir, workers)
    embedder.prepare([p for _, ps in split.candidates for p in ps] + split.strangers)
    report = run_open_set(
        identities, embedder.face, embedder.pack, galleries=sizes, settings=parsed, enrol_photos=enrol_photos
    )
    if as_json:
        print_json(_finite({**report, **_embedding_info(embedder)}))
        return
    for line in format_open_set(report):
        typer.echo(line)
