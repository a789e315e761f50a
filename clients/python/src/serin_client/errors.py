"""Exception hierarchy for the Serin client.

Every exception raised for a failed request derives from :class:`SerinError`
and carries the HTTP ``status`` (``None`` when no response was received), the
server's machine-readable ``code``, a human ``message`` and a ``details`` dict.

::

    SerinError
    ├── ValidationError      400, 422
    ├── AuthError            401 (no, unknown or expired credentials)
    │   └── ForbiddenError   403 (known caller, not allowed)
    ├── NotFoundError        404
    ├── ConflictError        409
    ├── RateLimitedError     429 (``retry_after``: seconds, from ``Retry-After``)
    ├── ServerError          5xx
    ├── SerinConnectionError no response (refused, DNS, reset, timeout)
    │   └── SerinTimeoutError
    └── WatchTimeoutError    :meth:`SerinClient.watch` gave up before the end

Any other error status raises a plain :class:`SerinError`. ``ForbiddenError``
is an ``AuthError`` so that code written when both statuses raised
``AuthError`` still catches it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "SerinError",
    "ValidationError",
    "AuthError",
    "ForbiddenError",
    "NotFoundError",
    "ConflictError",
    "RateLimitedError",
    "ServerError",
    "SerinConnectionError",
    "SerinTimeoutError",
    "WatchTimeoutError",
    "error_from_response",
    "error_class_for_status",
    "UNKNOWN_ERROR_CODE",
    "CONNECTION_ERROR_CODE",
    "TIMEOUT_CODE",
    "INVALID_RESPONSE_CODE",
    "WATCH_TIMEOUT_CODE",
]

#: ``code`` used when an error response has no JSON ``code`` field.
UNKNOWN_ERROR_CODE = "UNKNOWN_ERROR"
#: ``code`` of :class:`SerinConnectionError`.
CONNECTION_ERROR_CODE = "CONNECTION_ERROR"
#: ``code`` of :class:`SerinTimeoutError`.
TIMEOUT_CODE = "TIMEOUT"
#: ``code`` used when a successful response body is not the expected JSON.
INVALID_RESPONSE_CODE = "INVALID_RESPONSE"
#: ``code`` of :class:`WatchTimeoutError`.
WATCH_TIMEOUT_CODE = "WATCH_TIMEOUT"


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
    """Missing or rejected credentials (HTTP 401), or a refusal (403: :class:`ForbiddenError`)."""


class ForbiddenError(AuthError):
    """The caller is known but may not do this (HTTP 403): a role too low
    (``FORBIDDEN``), approving one's own release (``SELF_APPROVAL``), a
    disabled user (``USER_DISABLED``)..."""


class NotFoundError(SerinError):
    """The product, release or route does not exist (HTTP 404)."""


class ConflictError(SerinError):
    """The request conflicts with the current state (HTTP 409)."""


class RateLimitedError(SerinError):
    """Too many requests (HTTP 429).

    ``retry_after`` is the wait in seconds the server asked for in its
    ``Retry-After`` header, or ``None`` when it sent none (a concurrency limit
    such as ``CONCURRENCY_LIMIT`` is not lifted by waiting a fixed time). The
    client has already waited out and retried what its ``max_retry_wait``
    allowed before raising this.
    """

    retry_after: Optional[float]

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        details: Optional[Mapping[str, Any]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(status, code, message, details)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", retry_after={self.retry_after!r})"

    def __reduce__(self) -> Any:
        return (
            type(self),
            (self.status, self.code, self.message, self.details, self.retry_after),
        )


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


class WatchTimeoutError(SerinError):
    """:meth:`serin_client.SerinClient.watch` ran out of time before the
    deployment ended. ``deployment`` is the last state seen (``None`` if
    none could be read); the deployment itself goes on."""

    deployment: Any

    def __init__(
        self,
        status: Optional[int] = None,
        code: str = WATCH_TIMEOUT_CODE,
        message: str = "the deployment did not end in time",
        details: Optional[Mapping[str, Any]] = None,
        deployment: Any = None,
    ) -> None:
        super().__init__(status, code, message, details)
        self.deployment = deployment

    def __reduce__(self) -> Any:
        return (
            type(self),
            (self.status, self.code, self.message, self.details, self.deployment),
        )


def error_class_for_status(status: int) -> Type[SerinError]:
    """The :class:`SerinError` subclass used for an HTTP error status."""
    if status in (400, 422):
        return ValidationError
    if status == 401:
        return AuthError
    if status == 403:
        return ForbiddenError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 429:
        return RateLimitedError
    if 500 <= status <= 599:
        return ServerError
    return SerinError


def error_from_response(
    status: int, body: bytes, reason: str = "", retry_after: Optional[float] = None
) -> SerinError:
    """Build the typed error for an HTTP error response.

    The body is expected to be ``{"error": ..., "code": ..., "details": {...}}``;
    anything else (an HTML page from a proxy, an empty body) still gives an
    error of the right class, with code :data:`UNKNOWN_ERROR_CODE`.
    ``retry_after`` (seconds, from the ``Retry-After`` header) is kept by a
    :class:`RateLimitedError`.
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
    cls = error_class_for_status(status)
    if cls is RateLimitedError:
        return RateLimitedError(status, code, message, details, retry_after)
    return cls(status, code, message, details)
