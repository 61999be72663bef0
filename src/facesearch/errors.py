"""One exception hierarchy, free of HTTP: every failure carries a stable ``code``.

``api/errors.py`` is the only place that turns these codes into HTTP statuses.
"""

from __future__ import annotations

from typing import Any


class FaceSearchError(Exception):
    """Base of every error facesearch raises on purpose."""

    code: str = "INTERNAL"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The error as the API envelope's ``error`` object."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationError(FaceSearchError):
    """A parameter out of range or of the wrong type; ``details['field']`` names it."""

    code = "VALIDATION_ERROR"

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        merged = dict(details or {})
        if field is not None:
            merged.setdefault("field", field)
        super().__init__(message, details=merged)


class ImageDecodeError(FaceSearchError):
    """Not a JPEG, PNG or WebP, bad base64, or a truncated file."""

    code = "IMAGE_DECODE_FAILED"


class ImageTooLarge(FaceSearchError):
    """Over the byte or decoded-pixel limit."""

    code = "IMAGE_TOO_LARGE"


class ImageUrlRefused(FaceSearchError):
    """URL fetching off, host not allowed, or the fetch failed."""

    code = "IMAGE_URL_REFUSED"


class NoFaceDetected(FaceSearchError):
    """No face was found in the image."""

    code = "FACE_NOT_DETECTED"


class FaceQualityTooLow(FaceSearchError):
    """Enrolment refused by the quality gate; ``details['reason']`` says why."""

    code = "FACE_QUALITY_TOO_LOW"

    def __init__(self, message: str, *, reason: str, details: dict[str, Any] | None = None) -> None:
        merged = dict(details or {})
        merged["reason"] = reason
        super().__init__(message, details=merged)

    @property
    def reason(self) -> str:
        return str(self.details["reason"])


class LivenessFailed(FaceSearchError):
    """The face is judged not live; ``details['reason']`` says why."""

    code = "LIVENESS_FAILED"


class LivenessUnavailable(FaceSearchError):
    """Liveness was asked for but no liveness model is installed."""

    code = "LIVENESS_UNAVAILABLE"


class ModelUnavailable(FaceSearchError):
    """A model file or package is missing; the message names what to install."""

    code = "MODEL_UNAVAILABLE"


class ApiKeyMissing(FaceSearchError):
    code = "API_KEY_MISSING"


class ApiKeyInvalid(FaceSearchError):
    code = "API_KEY_INVALID"


class Forbidden(FaceSearchError):
    code = "FORBIDDEN"


class NotFound(FaceSearchError):
    """A collection, person, face, group or key that does not exist."""

    code = "NOT_FOUND"


class Conflict(FaceSearchError):
    """A taken external_id or name."""

    code = "CONFLICT"


class FaceLimitReached(FaceSearchError):
    """The person already has the collection's ``max_faces_per_person`` faces."""

    code = "FACE_LIMIT_REACHED"


class PayloadTooLarge(FaceSearchError):
    code = "PAYLOAD_TOO_LARGE"


class WorkersUnavailable(FaceSearchError):
    """The worker processes died during the request and could not finish it (try again)."""

    code = "WORKERS_UNAVAILABLE"


class IndexUnavailable(FaceSearchError):
    """The vector index server (Milvus) failed or cannot be reached: searches cannot run now.

    Writes already committed to the database are kept; the index catches up when it is back."""

    code = "INDEX_UNAVAILABLE"


class DatabaseUnavailable(FaceSearchError):
    """The database cannot be reached or timed out: nothing of this request was committed."""

    code = "DATABASE_UNAVAILABLE"


class ImageUnprocessable(FaceSearchError):
    """This photo made a worker process crash more than once: it is refused, not retried."""

    code = "IMAGE_UNPROCESSABLE"


class AddressInUse(FaceSearchError):
    """The server cannot listen on the address and port it was given."""

    code = "ADDRESS_IN_USE"
