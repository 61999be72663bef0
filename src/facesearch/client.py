"""``facesearch.Client``: the HTTP API from Python.

    >>> import facesearch
    >>> fs = facesearch.Client("http://127.0.0.1:8000", api_key="fs_...")
    >>> fs.create_person("staff", external_id="obama", images=["obama.jpg", "obama2.jpg"])
    >>> fs.identify("staff", "probe.jpg")["matches"][0]["external_id"]
    'obama'

Every method returns the ``data`` of the response envelope as plain dicts and lists
(``face_image`` returns the JPEG bytes), and raises the ``FaceSearchError`` subclass of
the server's error code (``NotFound``, ``Forbidden``, ``NoFaceDetected``, ...) with the
server's message and details; ``details["status"]`` holds the HTTP status. Photos are
bytes, or paths (``str`` or ``Path``) of files to read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from facesearch import __version__, errors
from facesearch.service.options import (
    DetectOptions,
    EnrolOptions,
    IdentifyAllOptions,
    SearchOptions,
    VerifyOptions,
)

__all__ = ["Client", "ImageInput", "error_class"]

ImageInput = bytes | bytearray | str | os.PathLike[str]


def _subclasses(cls: type[errors.FaceSearchError]) -> Iterable[type[errors.FaceSearchError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_CLASSES: dict[str, type[errors.FaceSearchError]] = {
    sub.code: sub for sub in _subclasses(errors.FaceSearchError) if sub.__module__ == errors.__name__
}


def error_class(code: str) -> type[errors.FaceSearchError]:
    """The ``FaceSearchError`` subclass for an error code (the base class for unknown codes)."""
    return _CLASSES.get(code, errors.FaceSearchError)


def _raise_for(response: httpx.Response) -> None:
    """Raise the typed error a failed response carries."""
    try:
        body = response.json()
        error = body["error"]
        code, message = str(error["code"]), str(error["message"])
        details = dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code = errors.PayloadTooLarge.code if response.status_code == 413 else "INTERNAL"
        message = f"HTTP {response.status_code}: {response.text[:200]}"
        details = {}
    details["status"] = response.status_code
    cls = error_class(code)
    exc = cls.__new__(cls)
    errors.FaceSearchError.__init__(exc, message, details=details)
    if cls is errors.FaceSearchError:
        exc.code = code
    raise exc


def _read_image(image: ImageInput) -> bytes:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    return Path(image).read_bytes()


def _form(options: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields: None dropped, booleans as true/false, lists repeated, objects as JSON."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, Mapping):
            out[key] = json.dumps(value)
        elif isinstance(value, list | tuple | set):
            out[key] = [str(v) for v in value]
        else:
            out[key] = str(value)
    return out


def _seg(value: str) -> str:
    return quote(str(value), safe="")


class Client:
    """A facesearch server, reached over HTTP with an API key."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("FACESEARCH_API_KEY")
        headers = {"User-Agent": f"facesearch-client/{__version__}"}
        if key:
            headers["X-API-Key"] = key
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, "/v1" + path, **kwargs)
        if not response.is_success:
            _raise_for(response)
        return response.json()["data"]

    def _photo(self, path: str, images: Mapping[str, ImageInput | None], options: Mapping[str, Any]) -> Any:
        files = [
            (name, (name, _read_image(img), "application/octet-stream"))
            for name, img in images.items()
            if img is not None
        ]
        return self._call("POST", path, data=_form(options), files=files)

    # --- health and collections ------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Status, model pack, index backend and counts (needs no key)."""
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def create_collection(
        self,
        name: str,
        *,
        title: str = "",
        description: str = "",
        kind: str = "internal",
        pack: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a collection (admin); settings: default_threshold, auto_enroll, ..."""
        body: dict[str, Any] = {"name": name, "title": title, "description": description, "kind": kind}
        if pack is not None:
            body["pack"] = pack
        if settings is not None:
            body["settings"] = dict(settings)
        result: dict[str, Any] = self._call("POST", "/collections", json=body)
        return result

    def list_collections(self, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """A page of collections: ``{"collections": [...], "next_cursor": ...}``."""
        params = _form({"limit": limit, "cursor": cursor})
        result: dict[str, Any] = self._call("GET", "/collections", params=params)
        return result

    def get_collection(self, collection: str) -> dict[str, Any]:
        """A collection by name or id."""
        result: dict[str, Any] = self._call("GET", f"/collections/{_seg(collection)}")
        return result

    def update_collection(self, collection: str, **fields: Any) -> dict[str, Any]:
        """Edit name, title, description, kind or settings (admin)."""
        result: dict[str, Any] = self._call("PATCH", f"/collections/{_seg(collection)}", json=fields)
        return result

    def delete_collection(self, collection: str) -> dict[str, Any]:
        """Delete a collection with everything in it (admin)."""
        result: dict[str, Any] = self._call("DELETE", f"/collections/{_seg(collection)}")
        return result

    # --- persons and faces ------------------------------------------------------------------

    def create_person(
        self,
        collection: str,
        *,
        external_id: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        groups: Sequence[str] = (),
        images: Sequence[ImageInput] = (),
        options: EnrolOptions | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Create a person, enrolling the central face of each photo in ``images``
        (``EnrolOptions``: crop, check_liveness)."""
        enrol = EnrolOptions.build(options, overrides).changed()
        enrol.pop("face", None)  # the central face of each photo
        fields = {
            "external_id": external_id,
            "name": name,
            "metadata": metadata,
            "groups": list(groups),
            **enrol,
        }
        path = f"/collections/{_seg(collection)}/persons"
        if not images:
            body = {k: v for k, v in fields.items() if v is not None}
            result: dict[str, Any] = self._call("POST", path, json=body)
            return result
        files = [
            ("images", (f"image{i}", _read_image(img), "application/octet-stream"))
            for i, img in enumerate(images)
        ]
        result = self._call("POST", path, data=_form(fields), files=files)
        return result

    def list_persons(
        self,
        collection: str,
        *,
        group: str | None = None,
        external_id: str | None = None,
        name_prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of persons: ``{"persons": [...], "next_cursor": ...}``."""
        params = _form(
            {
                "group": group,
                "external_id": external_id,
                "name_prefix": name_prefix,
                "limit": limit,
                "cursor": cursor,
            }
        )
        result: dict[str, Any] = self._call("GET", f"/collections/{_seg(collection)}/persons", params=params)
        return result

    def get_person(self, collection: str, person: str) -> dict[str, Any]:
        """A person with their faces."""
        result: dict[str, Any] = self._call("GET", f"/collections/{_seg(collection)}/persons/{_seg(person)}")
        return result

    def update_person(self, collection: str, person: str, **fields: Any) -> dict[str, Any]:
        """Edit name, external_id, metadata or groups."""
        path = f"/collections/{_seg(collection)}/persons/{_seg(person)}"
        result: dict[str, Any] = self._call("PATCH", path, json=fields)
        return result

    def delete_person(self, collection: str, person: str) -> dict[str, Any]:
        """Delete a person with all their faces."""
        path = f"/collections/{_seg(collection)}/persons/{_seg(person)}"
        result: dict[str, Any] = self._call("DELETE", path)
        return result

    def add_face(
        self,
        collection: str,
        person: str,
        image: ImageInput,
        options: EnrolOptions | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Enrol one more photo of a person (``EnrolOptions``: face, crop, check_liveness); the face."""
        path = f"/collections/{_seg(collection)}/persons/{_seg(person)}/faces"
        sent = EnrolOptions.build(options, overrides).changed()
        result: dict[str, Any] = self._photo(path, {"image": image}, sent)
        return result

    def delete_face(self, collection: str, face: str) -> dict[str, Any]:
        """Remove one face."""
        result: dict[str, Any] = self._call("DELETE", f"/collections/{_seg(collection)}/faces/{_seg(face)}")
        return result

    def face_image(self, face: str, *, format: Literal["binary", "base64"] = "binary") -> Any:
        """A face's thumbnail: JPEG bytes, or with ``format="base64"`` a dict with ``file_base64``."""
        if format == "base64":
            return self._call("GET", f"/faces/{_seg(face)}/image", params={"format": "base64"})
        response = self._http.get(f"/v1/faces/{_seg(face)}/image")
        if not response.is_success:
            _raise_for(response)
        return response.content

    # --- groups -------------------------------------------------------------------------

    def create_group(self, collection: str, name: str) -> dict[str, Any]:
        """Create a group."""
        path = f"/collections/{_seg(collection)}/groups"
        result: dict[str, Any] = self._call("POST", path, json={"name": name})
        return result

    def list_groups(self, collection: str, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """A page of groups with person counts: ``{"groups": [...], "next_cursor": ...}``."""
        path = f"/collections/{_seg(collection)}/groups"
        result: dict[str, Any] = self._call("GET", path, params=_form({"limit": limit, "cursor": cursor}))
        return result

    def delete_group(self, collection: str, group: str) -> dict[str, Any]:
        """Delete a group (its persons stay)."""
        result: dict[str, Any] = self._call("DELETE", f"/collections/{_seg(collection)}/groups/{_seg(group)}")
        return result

    def add_member(self, collection: str, group: str, person: str) -> dict[str, Any]:
        """Put a person in a group; returns the person."""
        path = f"/collections/{_seg(collection)}/groups/{_seg(group)}/persons/{_seg(person)}"
        result: dict[str, Any] = self._call("PUT", path)
        return result

    def remove_member(self, collection: str, group: str, person: str) -> dict[str, Any]:
        """Take a person out of a group; returns the person."""
        path = f"/collections/{_seg(collection)}/groups/{_seg(group)}/persons/{_seg(person)}"
        result: dict[str, Any] = self._call("DELETE", path)
        return result

    # --- search ---------------------------------------------------------------------------

    # --- corrections ------------------------------------------------------------------------

    def _person_path(self, collection: str, person: str, tail: str = "") -> str:
        return f"/collections/{_seg(collection)}/persons/{_seg(person)}{tail}"

    def add_negative(
        self, collection: str, person: str, image: ImageInput | None = None, *, face_id: str | None = None
    ) -> dict[str, Any]:
        """ "This face is not this person": a photo, or a stored face (``face_id``); the negative."""
        path = self._person_path(collection, person, "/negatives")
        if image is not None:
            result: dict[str, Any] = self._photo(path, {"image": image}, {})
        else:
            result = self._call("POST", path, json={"face_id": face_id})
        return result

    def list_negatives(self, collection: str, person: str) -> list[dict[str, Any]]:
        """A person's negatives, oldest first."""
        result: list[dict[str, Any]] = self._call("GET", self._person_path(collection, person, "/negatives"))[
            "negatives"
        ]
        return result

    def delete_negative(self, collection: str, person: str, negative: str) -> dict[str, Any]:
        """Remove one negative."""
        path = self._person_path(collection, person, f"/negatives/{_seg(negative)}")
        result: dict[str, Any] = self._call("DELETE", path)
        return result

    def set_different(self, collection: str, person: str, other: str) -> list[dict[str, Any]]:
        """Record that two persons are different people; the persons now recorded as different."""
        path = self._person_path(collection, person, "/different")
        result: list[dict[str, Any]] = self._call("POST", path, json={"person": other})["persons"]
        return result

    def list_different(self, collection: str, person: str) -> list[dict[str, Any]]:
        """The persons recorded as different from this one."""
        path = self._person_path(collection, person, "/different")
        result: list[dict[str, Any]] = self._call("GET", path)["persons"]
        return result

    def unset_different(self, collection: str, person: str, other: str) -> dict[str, Any]:
        """Forget that two persons are different people."""
        path = self._person_path(collection, person, f"/different/{_seg(other)}")
        result: dict[str, Any] = self._call("DELETE", path)
        return result

    def merge_persons(
        self, collection: str, person: str, source: str, *, metadata: str = "target"
    ) -> dict[str, Any]:
        """Merge ``source`` into ``person`` (``metadata``: target, source or union); the merged person."""
        path = self._person_path(collection, person, "/merge")
        result: dict[str, Any] = self._call("POST", path, json={"from": source, "metadata": metadata})
        return result

    def split_person(
        self, collection: str, person: str, faces: Sequence[str], **fields: Any
    ) -> dict[str, Any]:
        """Move these faces of ``person`` to a new person (external_id, name, metadata, groups)."""
        path = self._person_path(collection, person, "/split")
        result: dict[str, Any] = self._call("POST", path, json={"faces": list(faces), **fields})
        return result

    def unknown_clusters(
        self, collection: str, *, limit: int | None = None, min_size: int = 1
    ) -> dict[str, Any]:
        """Remembered unknown faces, clustered (``clusters``, ``unknown_faces``, ``clustered``)."""
        params: dict[str, Any] = {"min_size": min_size}
        if limit is not None:
            params["limit"] = limit
        result: dict[str, Any] = self._call(
            "GET", f"/collections/{_seg(collection)}/unknowns/clusters", params=params
        )
        return result

    def list_unknowns(self, collection: str, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """A page of remembered unknown faces (``unknowns``, ``next_cursor``), newest first."""
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        result: dict[str, Any] = self._call("GET", f"/collections/{_seg(collection)}/unknowns", params=params)
        return result

    def name_unknowns(self, collection: str, **fields: Any) -> dict[str, Any]:
        """Turn a ``cluster`` or listed ``unknowns`` into a new person or into ``person``."""
        path = f"/collections/{_seg(collection)}/unknowns/persons"
        result: dict[str, Any] = self._call("POST", path, json=fields)
        return result

    def forget_unknowns(self, collection: str, unknowns: Sequence[str]) -> int:
        """Forget these unknown faces now; how many there were."""
        path = f"/collections/{_seg(collection)}/unknowns/forget"
        return int(self._call("POST", path, json={"unknowns": list(unknowns)})["forgotten"])

    def unknown_image(self, collection: str, unknown: str) -> bytes:
        """The JPEG thumbnail of a remembered unknown face."""
        response = self._http.get(f"/v1/collections/{_seg(collection)}/unknowns/{_seg(unknown)}/image")
        if not response.is_success:
            _raise_for(response)
        return response.content

    def identify(
        self, collection: str, image: ImageInput, options: SearchOptions | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """Who is this? ``SearchOptions`` (top_k, threshold, max_false_positive_rate, groups, ...),
        whole or as keywords; checked here before anything is sent."""
        path = f"/collections/{_seg(collection)}/identify"
        sent = SearchOptions.build(options, overrides).changed()
        result: dict[str, Any] = self._photo(path, {"image": image}, sent)
        return result

    def search(
        self,
        collections: Sequence[str],
        image: ImageInput,
        options: SearchOptions | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Identify over several collections; each match names its collection (``SearchOptions``)."""
        sent = {**SearchOptions.build(options, overrides).changed(), "collections": list(collections)}
        result: dict[str, Any] = self._photo("/search", {"image": image}, sent)
        return result

    def identify_all(
        self, collection: str, image: ImageInput, options: IdentifyAllOptions | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """Every face of a photo with its matches (``IdentifyAllOptions``: top_k, threshold, groups,
        max_faces, min_face_size, output_size, output_aspect, ...)."""
        path = f"/collections/{_seg(collection)}/identify-all"
        sent = IdentifyAllOptions.build(options, overrides).changed()
        result: dict[str, Any] = self._photo(path, {"image": image}, sent)
        return result

    def detect(
        self, image: ImageInput, options: DetectOptions | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """Every face with box, landmarks, score and quality (``DetectOptions``: min_face_size, ...)."""
        sent = DetectOptions.build(options, overrides).changed()
        result: dict[str, Any] = self._photo("/detect", {"image": image}, sent)
        return result

    def verify(
        self,
        image_a: ImageInput,
        image_b: ImageInput | None = None,
        options: VerifyOptions | None = None,
        *,
        collection: str | None = None,
        person: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Two photos, or one photo and a person of a collection: similarity, distance, match
        (``VerifyOptions``: threshold, crop)."""
        sent = {
            **VerifyOptions.build(options, overrides).changed(),
            "collection": collection,
            "person": person,
        }
        result: dict[str, Any] = self._photo("/verify", {"image_a": image_a, "image_b": image_b}, sent)
        return result

    # --- API keys (admin) -------------------------------------------------------------------

    def create_key(self, name: str, role: str, collections: Sequence[str] | None = None) -> dict[str, Any]:
        """A new API key; the key itself is in ``["key"]``, shown only this once.

        ``collections`` (ids or names of existing collections) limits it; it binds to their ids.
        """
        body = {
            "name": name,
            "role": role,
            "collections": list(collections) if collections is not None else None,
        }
        result: dict[str, Any] = self._call("POST", "/keys", json=body)
        return result

    def list_keys(
        self,
        *,
        include_revoked: bool = True,
        collection: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of keys (never the keys themselves): ``{"keys": [...], "next_cursor": ...}``;
        ``collection``: only the keys that reach it."""
        params = _form(
            {"include_revoked": include_revoked, "collection": collection, "limit": limit, "cursor": cursor}
        )
        result: dict[str, Any] = self._call("GET", "/keys", params=params)
        return result

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key by id (``key_...``)."""
        result: dict[str, Any] = self._call("DELETE", f"/keys/{_seg(key_id)}")
        return result
