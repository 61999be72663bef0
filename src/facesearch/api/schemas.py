"""Pydantic request models: they validate input and document the API (responses: responses.py).

Routes that take a photo accept ``multipart/form-data`` or JSON; their parameters are the
``*Params`` models below, generated from the service's options values (``params_for``) and
validated by ``deps.ImageBody`` (which also documents the image fields). Other bodies are
plain JSON models.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from facesearch.api.examples import collection_example
from facesearch.domain import KINDS
from facesearch.service.options import (
    DetectOptions,
    EnrolOptions,
    IdentifyAllOptions,
    MatchOptions,
    Options,
    SearchOptions,
    VerifyOptions,
)
from facesearch.storage.records import ROLES

if typing.TYPE_CHECKING:
    Kind = str
    Role = str
else:  # the allowed values from their one home
    Kind = Literal[KINDS]
    Role = Literal[ROLES]


def split_list(value: Any) -> Any:
    """A list field given as one text is comma-separated: ``"a, b"`` -> ``["a", "b"]``. A JSON
    array is taken as it is (a name with a comma stays whole, and is then refused where names are
    checked); form fields are split by ``deps.ImageBody`` as they are read."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def json_object(value: Any) -> Any:
    """A JSON object given as text (multipart form fields) is parsed; anything else is left alone."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else None
        except json.JSONDecodeError:
            raise ValueError("must be a JSON object") from None
    return value


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_without_none(annotation)) is list


def _is_object(annotation: Any) -> bool:
    inner = _without_none(annotation)
    return inner is dict or typing.get_origin(inner) is dict


OptionsT = TypeVar("OptionsT", bound=Options)


class Params(BaseModel):
    """Base of the parameter models of photo routes (form fields or JSON keys).

    Most are generated from the service's options values (``params_for``), so an option is
    declared once, in ``service/options.py``; ``to_options`` turns the parameters back into it.
    """

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def list_fields(cls) -> tuple[str, ...]:
        """Fields that take several values (repeated form fields or comma-separated text)."""
        return tuple(n for n, f in cls.model_fields.items() if _is_list(f.annotation))

    @classmethod
    def json_fields(cls) -> tuple[str, ...]:
        """Fields holding a JSON object (sent as JSON text in multipart forms)."""
        return tuple(n for n, f in cls.model_fields.items() if _is_object(f.annotation))

    def to_options(self, cls: type[OptionsT]) -> OptionsT:
        """The options value of type ``cls`` from the parameters that belong to it."""
        names = {f.name for f in dataclasses.fields(cls)} & set(type(self).model_fields)
        return cls(**{n: getattr(self, n) for n in names})


def _http_annotation(annotation: Any) -> Any:
    """The HTTP type of an option: tuples of names are JSON lists."""
    inner = _without_none(annotation)
    if typing.get_origin(inner) is tuple:
        listed: Any = list[typing.get_args(inner)[0]]  # type: ignore[misc]
        return listed | None if inner is not annotation else listed
    return annotation


def params_for(options: type[Options], name: str, *, exclude: tuple[str, ...] = ()) -> type[Params]:
    """The HTTP parameter model of an options value: each field with its default, limits and
    description, lists split from repeated or comma-separated form fields, objects parsed from
    JSON text."""
    hints = typing.get_type_hints(options)
    definitions: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        if f.name in exclude:
            continue
        m = f.metadata
        limits = {k: m[k] for k in ("ge", "le", "gt", "lt", "max_length") if k in m}
        definitions[f.name] = (
            _http_annotation(hints[f.name]),
            Field(f.default, description=m["doc"], **limits),
        )
    lists = [n for n, (ann, _) in definitions.items() if _is_list(ann)]
    objects = [n for n, (ann, _) in definitions.items() if _is_object(ann)]
    validators: dict[str, Any] = {}
    if lists:
        validators["split_lists"] = field_validator(*lists, mode="before")(split_list)
    if objects:
        validators["parse_objects"] = field_validator(*objects, mode="before")(json_object)
    model: type[Params] = create_model(name, __base__=Params, __validators__=validators, **definitions)
    return model


# The photo routes' parameters: generated from the options values, plus the HTTP-only fields.
# (mypy sees the generated bases as Any: the fields are checked by pydantic at run time.)


class SearchParams(params_for(MatchOptions, "MatchOptions")):  # type: ignore[misc]
    """What every search takes."""


class IdentifyParams(params_for(SearchOptions, "SearchOptions")):  # type: ignore[misc]
    """Identify (1:N)."""


class MultiSearchParams(IdentifyParams):
    """Identify over several collections."""

    collections: list[str] = Field(min_length=1, max_length=100, description="names or ids to search")

    split_collections = field_validator("collections", mode="before")(split_list)


class IdentifyAllParams(params_for(IdentifyAllOptions, "IdentifyAllOptions")):  # type: ignore[misc]
    """Identify-all (N:N)."""


class DetectParams(params_for(DetectOptions, "DetectOptions")):  # type: ignore[misc]
    """Detection."""


class AddFaceParams(params_for(EnrolOptions, "EnrolOptions")):  # type: ignore[misc]
    """Adding a face to a person."""


class VerifyParams(params_for(VerifyOptions, "VerifyOptions")):  # type: ignore[misc]
    """Verification (1:1)."""

    collection: str | None = Field(None, description="with person: the person's collection")
    person: str | None = Field(
        None, description="compare image_a with this person's faces instead of image_b"
    )


class PersonFields(Params):
    external_id: str | None = Field(None, max_length=255, description="your id, unique in the collection")
    name: str | None = Field(None, max_length=255)
    metadata: dict[str, Any] | None = Field(None, description="any JSON object (a JSON string in forms)")

    parse_metadata = field_validator("metadata", mode="before")(json_object)


class PersonCreateParams(PersonFields, params_for(EnrolOptions, "EnrolPhotos", exclude=("face",))):  # type: ignore[misc]
    groups: list[str] = Field(default_factory=list, description="group names (repeated or comma-separated)")

    split_groups = field_validator("groups", mode="before")(split_list)


# --- JSON bodies --------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionSettings(Body):
    default_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="minimum similarity of a search that names no cut-off; when set it wins over "
        "max_false_positive_rate (a per-comparison rate: a bigger gallery names more strangers)",
    )
    max_false_positive_rate: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="the cut-off of a search that names none (default 0.01): the chance that a "
        "stranger matches anyone in the searched gallery, whatever its size",
    )
    auto_enroll: bool | None = Field(None, description="keep query faces of strong matches")
    auto_enroll_threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_faces_per_person: int | None = Field(None, ge=1, le=1000)
    person_score: Literal["template", "best_face"] | None = Field(
        None, description="score a person by the template of their faces (default) or their best face"
    )
    remember_unknown: bool | None = Field(
        None, description="keep faces that searches match to nobody, for the unknown-face clusters"
    )
    keep_source: bool | None = Field(
        None, description="keep each face's source, sealed, so a later pack can embed it again (default off)"
    )
    unknown_retention_days: int | None = Field(
        None, ge=1, le=3650, description="days an unknown face is kept (default 30), then purged"
    )


class CollectionCreate(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [collection_example()]})

    name: str = Field(min_length=1, max_length=64, description="unique; letters, digits, '.', '_', '-'")
    title: str = Field("", max_length=200)
    description: str = Field("", max_length=10_000)
    kind: Kind = "internal"
    pack: str | None = Field(None, max_length=50, description="model pack (default: the server's)")
    settings: CollectionSettings | None = None


class CollectionUpdate(Body):
    name: str | None = Field(None, min_length=1, max_length=64)
    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    kind: Kind | None = None
    settings: CollectionSettings | None = None


class PersonUpdate(Body):
    external_id: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=255)
    metadata: dict[str, Any] | None = Field(None, description="replaces the metadata")
    groups: list[str] | None = Field(None, description="replaces the groups")


class GroupCreate(Body):
    name: str = Field(min_length=1, max_length=100)


class KeyCreate(Body):
    name: str = Field(min_length=1, max_length=100)
    role: Role
    collections: list[str] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="limit the key to these existing collections (ids or names); the key is bound "
        "to their ids. Leave out for every collection.",
    )


# --- corrections and unknown faces ------------------------------------------------------------


class NegativeParams(Params):
    """A "not this person" correction: a photo (its central face), or a stored face by id."""

    face_id: str | None = Field(
        None,
        max_length=32,
        description="a stored face (fac_...) instead of a photo, e.g. a wrong auto-enrolment",
    )


class DifferentCreate(Body):
    person: str = Field(min_length=1, max_length=255, description="the other person (id or external id)")


class MergeBody(Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(
        alias="from", min_length=1, max_length=255, description="the person merged in (and deleted)"
    )
    metadata: Literal["target", "source", "union"] = Field(
        "target",
        description="target: this person's metadata wins (default); source: the merged person's; "
        "union: the merged person's keys this person lacks are added",
    )


class SplitBody(Body):
    faces: list[str] = Field(min_length=1, max_length=1000, description="ids of the faces to move")
    external_id: str | None = Field(None, min_length=1, max_length=255)
    name: str = Field("", max_length=255)
    metadata: dict[str, Any] | None = None
    groups: list[str] = Field(default_factory=list)


class NameUnknowns(Body):
    cluster: str | None = Field(None, max_length=32, description="a cluster id (or any face of it)")
    unknowns: list[str] | None = Field(None, max_length=1000, description="or the unknown faces themselves")
    person: str | None = Field(None, max_length=255, description="an existing person; else a new one")
    external_id: str | None = Field(None, min_length=1, max_length=255)
    name: str = Field("", max_length=255)
    metadata: dict[str, Any] | None = None
    groups: list[str] = Field(default_factory=list)


class ForgetUnknowns(Body):
    unknowns: list[str] = Field(min_length=1, max_length=1000)


class MigrationCreate(Body):
    pack: str = Field(min_length=1, max_length=50, description="the model pack to move the collection to")
    drop_unmigratable: bool = Field(
        False,
        description="delete, at the switch, the faces that cannot be embedded again (else they block it)",
    )
