"""API keys: where they come from, who they belong to, what they allow, and keeping them out of logs.

``Authenticator(store).authenticate(request)`` returns the caller's ``Principal`` or
raises ``ApiKeyMissing`` / ``ApiKeyInvalid``; ``Principal.require`` and
``Principal.check_collection`` raise ``Forbidden``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from starlette.requests import HTTPConnection

from facesearch.errors import ApiKeyInvalid, ApiKeyMissing, Forbidden
from facesearch.storage.records import ApiKeyRecord

__all__ = [
    "Action",
    "Authenticator",
    "KeyVerifier",
    "Principal",
    "RedactSecretsFilter",
    "extract_key",
    "install_log_redaction",
    "redact",
]

Action = Literal["read", "write", "admin"]

#: What each role may do.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "reader": frozenset({"read"}),
    "writer": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "admin"}),
}

#: Longer than any key we issue ("fs_" + 43 chars): refused without hashing.
_MAX_KEY_LENGTH = 256


def extract_key(conn: HTTPConnection) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer <key>``; None when absent or malformed."""
    direct = conn.headers.get("x-api-key", "").strip()
    if direct:
        return direct
    auth = conn.headers.get("authorization", "").strip()
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


@dataclass(frozen=True)
class Principal:
    """The caller behind a valid key: its role and the ids of the collections it may touch (None: all)."""

    key_id: str
    name: str
    role: str
    collections: tuple[str, ...] | None = None

    @classmethod
    def from_record(cls, record: ApiKeyRecord) -> Principal:
        """The principal of a stored key record."""
        return cls(key_id=record.id, name=record.name, role=record.role, collections=record.collections)

    def can(self, action: Action) -> bool:
        """Whether the role allows ``action`` (reader: read; writer: read, write; admin: all)."""
        return action in ROLE_ACTIONS.get(self.role, frozenset())

    def require(self, action: Action) -> None:
        """Raise ``Forbidden`` unless the role allows ``action``."""
        if not self.can(action):
            raise Forbidden(
                f"this API key's role ({self.role}) does not allow {action} operations",
                details={"role": self.role, "required": action},
            )

    def allows(self, collection_id: str) -> bool:
        """Whether the key may touch the collection with that id (keys bind to ids, not names)."""
        return self.collections is None or collection_id in self.collections

    def check_collection(self, collection_id: str, ref: str | None = None) -> None:
        """Raise ``Forbidden`` when the key is limited to other collections.

        The message is the same whether or not the collection exists; ``ref`` is what the
        caller asked for (shown in the details instead of the id).
        """
        if not self.allows(collection_id):
            raise Forbidden(
                "this API key is not allowed to use this collection",
                details={"collection": ref or collection_id},
            )

    def require_unlimited(self, what: str) -> None:
        """Raise ``Forbidden`` for a key limited to some collections (``what``: the operation)."""
        if self.collections is not None:
            raise Forbidden(
                f"a key limited to some collections cannot {what}",
                details={"role": self.role, "collections": list(self.collections)},
            )


class KeyVerifier(Protocol):
    """What the authenticator needs from the store."""

    def verify_api_key(self, plaintext: str) -> ApiKeyRecord | None: ...


class Authenticator:
    """Checks a request's API key against the store (which compares hashes only)."""

    def __init__(self, store: KeyVerifier) -> None:
        self.store = store

    def authenticate(self, conn: HTTPConnection) -> Principal:
        """The request's principal; ``ApiKeyMissing`` with no key, ``ApiKeyInvalid`` for a bad one."""
        key = extract_key(conn)
        if key is None:
            raise ApiKeyMissing(
                "an API key is required: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"
            )
        record = self.store.verify_api_key(key) if len(key) <= _MAX_KEY_LENGTH else None
        if record is None:
            raise ApiKeyInvalid("the API key is unknown or has been revoked")
        return Principal.from_record(record)


# --- keeping keys out of logs -------------------------------------------------------------

_MASK = "[REDACTED]"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1" + _MASK),
    (re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"), r"\1" + _MASK),
    (re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token)=)[^\s&#\"']+"), r"\1" + _MASK),
    (re.compile(r"fs_[A-Za-z0-9_-]{20,}"), "fs_" + _MASK),
)


def redact(text: str) -> str:
    """``text`` with API keys and bearer tokens masked."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Masks API keys (``fs_...``) and bearer tokens in log records; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact_record(record)
        except Exception:  # a filter must never break logging
            pass
        return True

    @staticmethod
    def _redact_record(record: logging.LogRecord) -> None:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        message = record.getMessage()
        if redact(message) != message:
            # A non-string argument rendered a secret: freeze the masked text.
            record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


#: Loggers that get the filter on themselves as well as on their handlers.
_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "facesearch")


def install_log_redaction() -> RedactSecretsFilter:
    """Add one ``RedactSecretsFilter`` to the root and uvicorn loggers and their handlers (idempotent).

    Call it after logging is configured (uvicorn configures its loggers before the app
    starts, so the app's lifespan is a good place): handlers added later are not covered.
    """
    existing = _find_filter(logging.getLogger())
    flt = existing or RedactSecretsFilter()
    for name in _LOGGERS:
        log = logging.getLogger(name)
        targets: list[logging.Filterer] = [log, *log.handlers]
        for target in targets:
            if not any(isinstance(f, RedactSecretsFilter) for f in target.filters):
                target.addFilter(flt)
    return flt


def _find_filter(log: logging.Logger) -> RedactSecretsFilter | None:
    for f in log.filters:
        if isinstance(f, RedactSecretsFilter):
            return f
    return None
