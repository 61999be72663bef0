"""The strangers protocol: does the service, on default settings, name people it does not know?

Run through ``FaceSearch`` itself (SQL, index, the cut-off rule, deduplication: everything but
the pipeline, whose embeddings come from the evaluation cache so each photo is embedded once):

- identities are split by a hash of their name as ``eval calibrate`` splits them: the fit half are
  candidates for the gallery; the strangers, never enrolled, are the held-out identities of the
  part the calibration's tail correction did not use (``fitting.stranger_part`` 1), so no pair
  of a stranger and an enrolled face was seen by the calibration;
- for each gallery size N, the first N candidates (in hash order) are enrolled with their first
  photo; every other photo of theirs is a genuine probe, and the first photo of every stranger
  a stranger probe;
- every probe is identified with default options: no threshold, no rate, top 1.

Reported per gallery size and per probe face-size bucket: strangers named / tried, genuine
found (the right person first) / tried, genuine named as someone else, genuine unknown.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.config import Settings
from facesearch.domain import Box, Detection, FaceObservation, Landmarks, Quality
from facesearch.errors import FaceSearchError, NoFaceDetected
from facesearch.eval.embedcache import QUALITY_FIELDS, CachedFace
from facesearch.eval.fitting import identity_half, stranger_part
from facesearch.pipeline import Analysis, ModelPack
from facesearch.pipeline.analyzer import AnalyseRequest

#: Probe face sizes (the smaller side of the detected box, original pixels), lower bounds.
SIZE_BUCKETS = (0, 48, 80, 112)
DEFAULT_GALLERIES = (50, 200, 500, 0)  # 0: every candidate


def size_bucket(face_size: float) -> str:
    """The bucket label of a face size: "<48", "48-79", "80-111" or ">=112" pixels."""
    bounds = [*SIZE_BUCKETS[1:], None]
    for low, high in zip(SIZE_BUCKETS, bounds, strict=True):
        if high is None or face_size < high:
            return f">={low}" if high is None else (f"<{high}" if low == 0 else f"{low}-{high - 1}")
    raise AssertionError("unreachable")


class CachedAnalyzer:
    """Answers the service's analysis requests with cached faces, looked up by photo hash.

    The cache keeps each photo's chosen face (embedding and quality); the box, landmarks and chip
    are stand-ins, and the border distance is taken as the face size (LFW faces are centred).
    """

    def __init__(self, faces: Mapping[str, CachedFace | None], pack: str) -> None:
        self._faces = faces
        self._pack = pack

    def analyse(self, request: AnalyseRequest) -> Analysis:
        face = self._faces.get(hashlib.sha256(request.data).hexdigest())
        if face is None:
            raise NoFaceDetected("no face was found in the image")
        q = dict(zip(QUALITY_FIELDS, face.quality.tolist(), strict=True))
        size = int(round(q["face_size"]))
        quality = Quality(size, size, False, q["yaw"], q["pitch"], q["sharpness"], q["brightness"])
        side = max(size, 1)
        points = Landmarks(((0.0, 0.0),) * 5)
        detection = Detection(Box(0, 0, side, side), float(q["detection_score"]), points)
        chip = np.zeros((32, 32, 3), np.uint8)
        observation = FaceObservation(detection, quality, face.vector, chip, self._pack)
        return Analysis(faces=(observation,), width=side, height=side)

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class Tally:
    """Counts of one gallery size (or one of its face-size buckets)."""

    strangers: int = 0
    strangers_named: int = 0
    genuine: int = 0
    genuine_found: int = 0
    genuine_wrong: int = 0
    genuine_unknown: int = 0

    def to_dict(self) -> dict[str, Any]:
        def share(n: int, d: int) -> float | None:
            return round(n / d, 6) if d else None

        return {
            **self.__dict__,
            "strangers_named_rate": share(self.strangers_named, self.strangers),
            "genuine_found_rate": share(self.genuine_found, self.genuine),
            "genuine_wrong_rate": share(self.genuine_wrong, self.genuine),
        }


@dataclass
class GalleryReport:
    persons: int
    faces: int
    threshold: float | None
    rule: dict[str, Any] | None
    total: Tally = field(default_factory=Tally)
    by_size: dict[str, Tally] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "persons": self.persons,
            "faces": self.faces,
            "threshold": self.threshold,
            "threshold_rule": self.rule,
            **self.total.to_dict(),
            "by_face_size": {k: self.by_size[k].to_dict() for k in sorted(self.by_size, key=_bucket_order)},
        }


def _bucket_order(label: str) -> int:
    """Buckets from the smallest faces up; "no face" last."""
    labels = [size_bucket(low) for low in SIZE_BUCKETS]
    return labels.index(label) if label in labels else len(labels)


@dataclass(frozen=True)
class OpenSetSplit:
    candidates: list[tuple[str, list[Path]]]  # gallery candidates in hash order
    strangers: list[Path]  # the first photo of each stranger identity


def open_set_split(identities: Mapping[str, Sequence[Path]]) -> OpenSetSplit:
    """Candidates (hash half 0, in hash order) and stranger probes (held-out identities of the
    checking part, the first photo of each)."""

    def order(name: str) -> str:
        return hashlib.sha256(name.encode("utf-8")).hexdigest()

    candidates = [(n, list(ps)) for n, ps in sorted(identities.items(), key=lambda kv: order(kv[0])) if ps]
    strangers = [
        list(ps)[0]
        for n, ps in sorted(identities.items())
        if ps and identity_half(n) == 1 and stranger_part(n) == 1
    ]
    return OpenSetSplit([c for c in candidates if identity_half(c[0]) == 0], strangers)


def run_open_set(
    identities: Mapping[str, Sequence[Path]],
    face_of: Callable[[Path], CachedFace | None],
    pack: ModelPack,
    *,
    galleries: Sequence[int] = DEFAULT_GALLERIES,
    settings: Mapping[str, Any] | None = None,
    probe_files: Mapping[Path, Path] | None = None,
    enrol_photos: int = 1,
) -> dict[str, Any]:
    """The strangers protocol (module docstring) through a throwaway ``FaceSearch`` per gallery.

    ``face_of``: a photo's cached face; ``pack``: the model pack whose embeddings those are (its
    calibration sets the default cut-off); ``settings``: collection settings (default: none, so
    the defaults apply); a gallery size of 0 means every candidate. ``probe_files``: a file to
    send instead of a probe photo (for example the photo made smaller); enrolled photos are never
    replaced. ``enrol_photos``: how many photos of each candidate are enrolled (the first ones);
    the others are the genuine probes.
    """
    if enrol_photos < 1:
        raise ValueError("enrol_photos must be at least 1")
    from facesearch.service import FaceSearch

    split = open_set_split(identities)
    photos = [p for _, ps in split.candidates for p in ps] + split.strangers
    enrolled = {p for _, ps in split.candidates for p in ps[:enrol_photos]}
    sent = {p: p if p in enrolled else (probe_files or {}).get(p, p) for p in photos}
    data = {p: sent[p].read_bytes() for p in photos}
    faces = {hashlib.sha256(data[p]).hexdigest(): face_of(sent[p]) for p in photos}
    sizes = sorted({len(split.candidates) if g == 0 else min(g, len(split.candidates)) for g in galleries})
    reports = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="facesearch-openset-") as tmp:
            svc = FaceSearch(
                Settings(data_dir=Path(tmp), workers=0, default_pack=pack.name),
                analyzer=CachedAnalyzer(faces, pack.name),
                packs={pack.name: pack},
            )
            try:
                reports.append(_one_gallery(svc, split, n, data, faces, settings, enrol_photos))
            finally:
                svc.close()
    return {
        "protocol": "strangers (open-set) through the service, default search options",
        "pack": pack.name,
        "candidates": len(split.candidates),
        "stranger_identities": len(split.strangers),
        "collection_settings": dict(settings or {}),
        "enrol_photos": enrol_photos,
        "galleries": [r.to_dict() for r in reports],
    }


def _one_gallery(
    svc: Any,
    split: OpenSetSplit,
    n: int,
    data: Mapping[Path, bytes],
    faces: Mapping[str, CachedFace | None],
    settings: Mapping[str, Any] | None,
    enrol_photos: int = 1,
) -> GalleryReport:
    coll = svc.create_collection("openset", pack=svc.default_pack, settings=dict(settings or {}))
    enrolled: dict[str, list[Path]] = {}
    for name, ps in split.candidates[:n]:
        try:
            svc.create_person(coll, external_id=name, images=[data[p] for p in ps[:enrol_photos]])
        except FaceSearchError:  # no face, or refused by the enrolment gate: not in the gallery
            continue
        enrolled[name] = ps[enrol_photos:]
    report = GalleryReport(len(enrolled), svc.index.count(), None, None)

    def tally(path: Path) -> tuple[Tally, Any]:
        face = faces[hashlib.sha256(data[path]).hexdigest()]
        label = size_bucket(float(face.quality[0])) if face is not None else "no face"
        bucket = report.by_size.setdefault(label, Tally())
        try:
            result = svc.identify(coll, data[path])
        except NoFaceDetected:
            result = None
        if result is not None and report.threshold is None:
            report.threshold = result.threshold
            rule = result.threshold_rule
            if rule is not None:
                report.rule = {"kind": rule.kind, "value": rule.value, "set_by": rule.set_by}
        return bucket, result

    for path in split.strangers:
        bucket, result = tally(path)
        named = result is not None and bool(result.matches)
        for t in (report.total, bucket):
            t.strangers += 1
            t.strangers_named += named
    for name, probes in enrolled.items():
        for path in probes:
            bucket, result = tally(path)
            first = result.matches[0].person.external_id if result is not None and result.matches else None
            for t in (report.total, bucket):
                t.genuine += 1
                t.genuine_found += first == name
                t.genuine_wrong += first is not None and first != name
                t.genuine_unknown += first is None
    return report


def format_open_set(r: Mapping[str, Any]) -> list[str]:
    """The report as lines of text (one table row per gallery size, then the face-size buckets)."""
    lines = [
        f"Strangers protocol, pack {r['pack']}: {r['candidates']} gallery candidates, "
        f"{r['stranger_identities']} strangers (never enrolled), {r.get('enrol_photos', 1)} photo(s) "
        f"enrolled per person, search options {dict(r['collection_settings']) or 'the defaults'}",
        "gallery persons | strangers named | genuine found | genuine named wrongly | threshold (rule)",
    ]
    for g in r["galleries"]:
        rule = g["threshold_rule"] or {}
        how = f"{rule.get('kind')}={rule.get('value')} by {rule.get('set_by')}" if rule else "-"
        thr = "-" if g["threshold"] is None else f"{g['threshold']:.3f}"
        lines.append(
            f"{g['persons']:>15} | {_frac(g['strangers_named'], g['strangers'])} | "
            f"{_frac(g['genuine_found'], g['genuine'])} | {_frac(g['genuine_wrong'], g['genuine'])} | "
            f"{thr} ({how})"
        )
    last = r["galleries"][-1] if r["galleries"] else None
    if last is not None:
        lines.append(f"by probe face size, gallery of {last['persons']} persons:")
        for label, t in last["by_face_size"].items():
            lines.append(
                f"  {label:>7} px: strangers named {_frac(t['strangers_named'], t['strangers'])}, "
                f"genuine found {_frac(t['genuine_found'], t['genuine'])}"
            )
    return lines


def _frac(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.2f}%)" if d else f"{n}/0"
