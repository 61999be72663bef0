"""Options values: one frozen, validated dataclass per operation family.

Each option is declared once, here, with its default, its meaning and its limits. The service
takes these values; the HTTP parameter models are generated from them (``api/schemas.py``), the
CLI and ``Client`` build them, and the photo-analysis part of a search travels to the worker
processes as ``pipeline.AnalyseOptions``. Adding an option is one line here (plus its use).

Python callers may also pass options as keywords: ``fs.identify("staff", photo, top_k=3)`` is
``fs.identify("staff", photo, SearchOptions(top_k=3))``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from facesearch.domain import GROUPS_MAX, FaceChoice, check_metadata
from facesearch.errors import ValidationError

SearchMode = Literal["fast", "accurate"]


def option(
    default: Any,
    doc: str,
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    max_length: int | None = None,
    unit: str = "",
) -> Any:
    """A dataclass field with its documentation and limits (read by the validator and the API)."""
    limits = {"ge": ge, "le": le, "gt": gt, "lt": lt, "max_length": max_length}
    meta = {"doc": doc, "unit": unit, **{k: v for k, v in limits.items() if v is not None}}
    return dataclasses.field(default=default, metadata=meta)


def _num(x: float) -> str:
    return f"{x:g}"


def _parts(hint: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
    return hint, False


def _check(name: str, hint: Any, meta: Mapping[str, Any], value: Any) -> Any:
    """``value`` checked against its type and limits; returns it normalised (lists -> tuples)."""
    kind, nullable = _parts(hint)
    if value is None:
        if nullable:
            return None
        raise ValidationError(f"{name} is required", field=name)
    origin = typing.get_origin(kind)
    if origin is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise ValidationError(f"{name} must be {' or '.join(repr(c) for c in choices)}", field=name)
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false", field=name)
        return value
    if kind is str:
        limit = meta.get("max_length")
        if not isinstance(value, str) or (limit is not None and len(value) > limit):
            raise ValidationError(f"{name} must be text of at most {limit} characters", field=name)
        return value
    if origin is tuple:
        if (
            isinstance(value, str)
            or not isinstance(value, list | tuple)
            or not all(isinstance(v, str) for v in value)
        ):
            raise ValidationError(f"{name} must be a list of names", field=name)
        return tuple(value)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ValidationError(f"{name} must be a JSON object", field=name)
        return value
    if kind is int or kind is float:
        ok_type = isinstance(value, int) if kind is int else isinstance(value, int | float)
        noun = "an integer" if kind is int else "a number"
        lo, hi = meta.get("ge"), meta.get("le")
        glo, ghi = meta.get("gt"), meta.get("lt")
        unit = f" {meta['unit']}" if meta.get("unit") else ""
        in_range = ok_type and not isinstance(value, bool)
        in_range = in_range and (lo is None or value >= lo) and (hi is None or value <= hi)
        in_range = in_range and (glo is None or value > glo) and (ghi is None or value < ghi)
        if not in_range:
            if glo is not None and ghi is not None:
                span = f"between {_num(glo)} and {_num(ghi)} (both excluded)"
            elif lo is not None and hi is not None:
                span = f"from {_num(lo)} to {_num(hi)}"
            else:
                span = "in range"
            raise ValidationError(f"{name} must be {noun} {span}{unit}", field=name)
        return value
    raise TypeError(f"option {name}: unsupported type {hint!r}")  # a mistake in this module


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of the options values: validation from each field's type and limits."""

    _hints: ClassVar[dict[str, Any]] = {}  # each subclass's resolved annotations, set once

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._hints = typing.get_type_hints(cls)

    def __post_init__(self) -> None:
        hints = self._hints
        for f in dataclasses.fields(self):
            value = _check(f.name, hints[f.name], f.metadata, getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self._check_together()

    def _check_together(self) -> None:
        """Rules between fields (subclasses)."""

    @classmethod
    def build(cls, options: Self | None = None, overrides: Mapping[str, Any] | None = None) -> Self:
        """``options`` (default: every default) with keyword overrides, validated.

        An unknown keyword is a ValidationError naming it (as the HTTP API answers one)."""
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(options).__name__}")
        if not overrides:
            return options if options is not None else cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValidationError(
                f"unknown option {unknown[0]!r}; {cls.__name__} takes {', '.join(sorted(known))}",
                field=unknown[0],
            )
        return dataclasses.replace(options, **overrides) if options is not None else cls(**overrides)

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults (what a client needs to send)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }


def _one_rule(threshold: float | None, max_false_positive_rate: float | None) -> None:
    if threshold is not None and max_false_positive_rate is not None:
        raise ValidationError(
            "give either threshold or max_false_positive_rate, not both", field="max_false_positive_rate"
        )


@dataclasses.dataclass(frozen=True)
class MatchOptions(Options):
    """What every search takes (identify, search, identify-all)."""

    top_k: int = option(1, "how many matches", ge=1, le=100)
    threshold: float | None = option(None, "minimum similarity (default: collection's)", ge=0.0, le=1.0)
    max_false_positive_rate: float | None = option(
        None,
        "instead of threshold: the chance a stranger matches anyone in the searched gallery; "
        "the threshold used follows from the pack's calibration and the gallery's size",
        gt=0.0,
        lt=1.0,
    )
    groups: tuple[str, ...] | None = option(None, "search only persons of these groups")
    search_mode: SearchMode = option("fast", "fast: ANN index; accurate: exhaustive")
    return_metadata: bool = option(True, "each match's person metadata")
    check_liveness: bool = option(False, "fail with LIVENESS_FAILED when the face is not live")

    def _check_together(self) -> None:
        _one_rule(self.threshold, self.max_false_positive_rate)
        if self.groups is not None and len(self.groups) > GROUPS_MAX:
            raise ValidationError(f"search at most {GROUPS_MAX} groups at once", field="groups")


@dataclasses.dataclass(frozen=True)
class SearchOptions(MatchOptions):
    """Identify (1:N) in one collection, or search several: the photo's one chosen face."""

    deduplicate: bool = option(True, "best face per person only")
    return_thumbnails: bool = option(False, "each match's face thumbnail as base64")
    face: FaceChoice = option("central", "which face when the photo has several")
    crop: bool = option(False, "the image is already a tight face crop: no detection")
    auto_enroll: bool | None = option(None, "keep the query face on a strong match (default: collection's)")
    enroll_if_unknown: bool = option(False, "create a person from the face when nothing matches")
    external_id: str | None = option(None, "for enroll_if_unknown", max_length=255)
    name: str | None = option(None, "for enroll_if_unknown", max_length=255)
    metadata: dict[str, Any] | None = option(None, "for enroll_if_unknown")

    def _check_together(self) -> None:
        super()._check_together()
        if self.metadata is not None:
            check_metadata(self.metadata)

    @property
    def enrols(self) -> bool:
        """Whether this search may write (auto-enrol or enrol-if-unknown asked for)."""
        return bool(self.enroll_if_unknown or self.auto_enroll)


@dataclasses.dataclass(frozen=True)
class IdentifyAllOptions(MatchOptions):
    """Identify-all (N:N): every face of the photo."""

    max_faces: int = option(20, "at most this many faces", ge=1, le=100)
    min_face_size: int = option(32, "smallest face, in pixels", ge=8, le=4096, unit="pixels")
    output_size: int | None = option(160, "width of the returned crops", ge=16, le=1024)
    output_aspect: float = option(1.0, "width / height of the returned crops", ge=0.25, le=4.0)


@dataclasses.dataclass(frozen=True)
class DetectOptions(Options):
    """Detection: every face with box, landmarks, score and quality."""

    min_face_size: int = option(32, "smallest face, in pixels", ge=8, le=4096, unit="pixels")
    max_faces: int = option(100, "at most this many faces", ge=1, le=1000)
    check_liveness: bool = option(False, "also judge each face live or not (LIVENESS_FAILED)")


@dataclasses.dataclass(frozen=True)
class VerifyOptions(Options):
    """Verification (1:1): two photos, or a photo and a person."""

    threshold: float | None = option(None, "similarity needed for match", ge=0.0, le=1.0)
    crop: bool = option(False, "the images are already tight face crops")


@dataclasses.dataclass(frozen=True)
class EnrolOptions(Options):
    """Enrolment of a photo as a person's face (create a person, add a face)."""

    face: FaceChoice = option("central", "which face when the photo has several")
    crop: bool = option(False, "the image is already a tight face crop: no detection")
    check_liveness: bool = option(False, "refuse a photo not judged live (LIVENESS_FAILED)")


__all__ = [
    "DetectOptions",
    "EnrolOptions",
    "FaceChoice",
    "IdentifyAllOptions",
    "MatchOptions",
    "Options",
    "SearchMode",
    "SearchOptions",
    "VerifyOptions",
    "option",
]
