"""Per-request context the HTTP layer hands to the service without threading it through every call."""

from __future__ import annotations

from contextvars import ContextVar

#: The id of the HTTP request being served (None outside one): kept with remembered unknown faces.
CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("facesearch_request_id", default=None)
