"""Sealed face sources: what a face was enrolled from, kept (collection setting ``keep_source``) so
that a later model pack can embed it again without the photo being sent twice.

A source is the face region of the photo (``imaging.source_crop``: the box enlarged by half its
size on each side, square, at most 320 px, JPEG quality 92), sealed with AES-256-GCM from the
maintained ``cryptography`` package (authenticated: a changed byte is detected, never decoded)
under the server's ``FACESEARCH_SOURCE_KEY``; the key is only ever in the settings. A sealed
source is: version byte 1, 12-byte random nonce, ciphertext with its 16-byte tag.
"""

from __future__ import annotations

import base64
import binascii
import os

from facesearch.errors import ValidationError

_VERSION = b"\x01"
_NONCE = 12


def new_key() -> str:
    """A fresh key for ``FACESEARCH_SOURCE_KEY`` (urlsafe base64 of 32 random bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class SourceSeal:
    """Seals and opens face sources with one AES-256-GCM key."""

    def __init__(self, key: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            raw = base64.urlsafe_b64decode(key.strip() + "=" * (-len(key.strip()) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValidationError(
                "FACESEARCH_SOURCE_KEY must be urlsafe base64 of 32 bytes "
                "(`facesearch sources new-key` makes one)",
                field="source_key",
            )
        self._aead = AESGCM(raw)

    def seal(self, data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, data, None)

    def open(self, sealed: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        if not sealed[:1] == _VERSION or len(sealed) < 1 + _NONCE + 16:
            raise ValidationError("not a sealed face source", field="source")
        try:
            return self._aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], None)
        except InvalidTag:
            raise ValidationError(
                "a face source cannot be opened: another FACESEARCH_SOURCE_KEY sealed it, or it was changed",
                field="source",
            ) from None
