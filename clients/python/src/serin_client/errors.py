"""Exception hierarchy for the Serin client.

Every exception raised for a failed request derives from :class:`SerinError`
and carries the HTTP ``status`` (``None`` when no response was received), the
server's machine-readable ``code``, a human ``message`` and a ``details`` dict.

::

    SerinError
    ├── ValidationError      400, 422
    ├── AuthError            401, 403
    ├── NotFoundError        404
    ├── ConflictError        409
    ├── ServerError          5xx
    └── SerinConnectionError no response (refused, DNS, reset, timeout)
        └── SerinTimeoutError

Any other error status raises a plain :class:`SerinError`.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "SerinError",
    "ValidationError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "ServerError",
    "SerinConnectionError",
    "SerinTimeoutError",
    "error_from_response",
    "error_class_for_status",
    "UNKNOWN_ERROR_CODE",
    "CONNECTION_ERROR_CODE",
    "TIMEOUT_CODE",
    "INVALID_RESPONSE_CODE",
]

#: ``code`` used when an error response has no JSON ``code`` field.
UNKNOWN_ERROR_CODE = "UNKNOWN_ERROR"
#: ``code`` of :class:`SerinConnectionError`.
CONNECTION_ERROR_CODE = "CONNECTION_ERROR"
#: ``code`` of :class:`SerinTimeoutError`.
TIMEOUT_CODE = "TIMEOUT"
#: ``code`` used when a successful response body is not the expected JSON.
INVALID_RESPONSE_CODE = "INVALID_RESPONSE"


class SerinError(Exception):
    """Base class of every error raised by :class:`serin_client.SerinClient`."""

    status: Optional[int]
    code: str
    message: str
    details: Dict[str, Any]

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        details: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details) if details else {}

    @property
    def field(self) -> Optional[str]:
        """The offending field name for field errors (``details["field"]``), if any."""
        value = self.details.get("field")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        prefix = f"{self.status} {self.code}" if self.status is not None else self.code
        return f"[{prefix}] {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, details={self.details!r})"
        )

    def __reduce__(self) -> Any:  # keep the exceptions picklable
        return (type(self), (self.status, self.code, self.message, self.details))


class ValidationError(SerinError):
    """The request was rejected as invalid (HTTP 400 or 422)."""


class AuthError(SerinError):
    """Missing or rejected credentials (HTTP 401 or 403)."""


class NotFoundError(SerinError):
    """The product, release or route does not exist (HTTP 404)."""


class ConflictError(SerinError):
    """The request conflicts with the current state (HTTP 409)."""


class ServerError(SerinError):
    """The server failed to handle the request (HTTP 5xx)."""


class SerinConnectionError(SerinError):
    """No HTTP response was received: refused, unreachable, reset, timed out."""

    def __init__(
        self,
        status: Optional[int] = None,
        code: str = CONNECTION_ERROR_CODE,
        message: str = "connection failed",
        details: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(status, code, message, details)


class SerinTimeoutError(SerinConnectionError):
    """The request did not complete within the client's timeout."""

    def __init__(
        self,
        status: Optional[int] = None,
        code: str = TIMEOUT_CODE,
        message: str = "request timed out",
        details: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(status, code, message, details)


def error_class_for_status(status: int) -> Type[SerinError]:
    """The :class:`SerinError` subclass used for an HTTP error status."""
    if status in (400, 422):
        return ValidationError
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if 500 <= status <= 599:
        return ServerError
    return SerinError


def error_from_response(status: int, body: bytes, reason: str = "") -> SerinError:
    """Build the typed error for an HTTP error response.

    The body is expected to be ``{"error": ..., "code": ..., "details": {...}}``;
    anything else (an HTML page from a proxy, an empty body) still gives an
    error of the right class, with code :data:`UNKNOWN_ERROR_CODE`.
    """
    code = UNKNOWN_ERROR_CODE
    message = ""
    details: Dict[str, Any] = {}
    payload: Any = None
    if body:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
    if isinstance(payload, dict):
        if isinstance(payload.get("code"), str) and payload["code"]:
            code = payload["code"]
        error_text = payload.get("error", payload.get("message"))
        if isinstance(error_text, str):
            message = error_text
        if isinstance(payload.get("details"), dict):
            details = payload["details"]
    elif body:
        message = body.decode("utf-8", errors="replace").strip()
        if len(message) > 500:
            message = message[:500] + "..."
    if not message:
        message = f"HTTP {status}" + (f" {reason}" if reason else "")
    return error_class_for_status(status)(status, code, message, details)
