"""facesearch: self-hosted face identification.

``facesearch.FaceSearch`` is the service in-process; ``facesearch.Client`` talks to a
running server (``facesearch serve``). Names load on first use, so importing the
package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from facesearch.client import Client
    from facesearch.domain import (
        Box,
        Collection,
        Face,
        Group,
        IdentifyAllResult,
        IdentifyResult,
        Match,
        Person,
        VerifyResult,
    )
    from facesearch.errors import FaceSearchError
    from facesearch.service import FaceSearch

_WHERE = {
    "Client": "facesearch.client",
    "FaceSearch": "facesearch.service",
    "FaceSearchError": "facesearch.errors",
    **{
        name: "facesearch.domain"
        for name in (
            "Box",
            "Collection",
            "Face",
            "Group",
            "IdentifyAllResult",
            "IdentifyResult",
            "Match",
            "Person",
            "VerifyResult",
        )
    },
}

__all__ = [
    "Box",
    "Client",
    "Collection",
    "Face",
    "FaceSearch",
    "FaceSearchError",
    "Group",
    "IdentifyAllResult",
    "IdentifyResult",
    "Match",
    "Person",
    "VerifyResult",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'facesearch' has no attribute {name!r}")
