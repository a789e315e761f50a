"""The HTTP client for the Serin server (stdlib only: urllib + json)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, TypeVar, Union

from ._version import __version__
from ._time import TimestampLike, timestamp_to_wire
from .errors import (
    INVALID_RESPONSE_CODE,
    SerinConnectionError,
    SerinError,
    SerinTimeoutError,
    error_from_response,
)
from .models import (
    Health,
    Lane,
    Product,
    Release,
    ReleaseStatus,
    Signal,
    SignalInput,
    SignalKind,
    SignalLike,
)

__all__ = ["SerinClient", "CanaryPyClient", "DEFAULT_BASE_URL", "DEFAULT_TIMEOUT"]

DEFAULT_BASE_URL = "http://localhost:8080"
DEFAULT_TIMEOUT = 10.0

T = TypeVar("T")
ReleaseRef = Union[int, Release]


def _release_id(release: ReleaseRef) -> int:
    if isinstance(release, Release):
        return release.id
    if isinstance(release, bool) or not isinstance(release, int):
        raise TypeError(f"release must be an int id or a Release, not {type(release).__name__}")
    return release


def _segment(value: str) -> str:
    """Quote one path segment (product names may hold any character)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return urllib.parse.quote(value, safe="")


def _signal_body(item: SignalLike) -> Dict[str, Any]:
    if isinstance(item, SignalInput):
        return item.to_dict()
    if isinstance(item, Mapping):
        body = dict(item)
        if body.get("timestamp") is not None:
            body["timestamp"] = timestamp_to_wire(body["timestamp"])
        return body
    raise TypeError(f"a signal must be a SignalInput or a mapping, not {type(item).__name__}")


class SerinClient:
    """Client for a Serin server.

    >>> client = SerinClient("http://localhost:8080")
    >>> client.get_latest_stable_version("web")  # doctest: +SKIP
    '1.2.0'

    Every failed call raises a :class:`serin_client.SerinError` subclass.
    The client keeps no connection open and is safe to share between threads.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._opener = urllib.request.build_opener()

    def __repr__(self) -> str:
        auth = ", api_key=***" if self.api_key else ""
        return f"{type(self).__name__}(base_url={self.base_url!r}{auth}, timeout={self.timeout!r})"

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, body: Optional[Any] = None) -> Any:
        """Send one request and return the decoded JSON body (``None`` if empty)."""
        url = self.base_url + path
        headers = {
            "Accept": "application/json",
            "User-Agent": f"serin-client-python/{__version__}",
        }
        data: Optional[bytes] = None
        if body is not None:
            try:
                data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"request body cannot be sent as JSON: {exc}") from None
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        where = f"{method} {url}"

        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except Exception:  # the body is best effort
                raw = b""
            finally:
                exc.close()
            raise error_from_response(exc.code, raw, str(exc.reason or "")) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise SerinTimeoutError(message=f"{where}: timed out after {self.timeout}s") from exc
            raise SerinConnectionError(message=f"{where}: cannot connect: {reason}") from exc
        except (socket.timeout, TimeoutError) as exc:
            raise SerinTimeoutError(message=f"{where}: timed out after {self.timeout}s") from exc
        except (http.client.HTTPException, OSError) as exc:
            raise SerinConnectionError(message=f"{where}: connection failed: {exc!r}") from exc

        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SerinError(
                status, INVALID_RESPONSE_CODE, f"{where}: response is not valid JSON"
            ) from None

    def _parse(self, payload: Any, parse: Callable[[Any], T], what: str) -> T:
        """Turn a JSON payload into a model, as a SerinError if it has the wrong shape."""
        try:
            if not isinstance(payload, dict):
                raise TypeError("not a JSON object")
            return parse(payload)
        except (KeyError, TypeError, ValueError) as exc:
            raise SerinError(
                None, INVALID_RESPONSE_CODE, f"unexpected {what} in response: {exc!r}"
            ) from None

    def _items(self, payload: Any, parse: Callable[[Any], T], what: str) -> List[T]:
        items = payload.get("items") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise SerinError(None, INVALID_RESPONSE_CODE, f"expected {{'items': [...]}} of {what}")
        return [self._parse(item, parse, what) for item in items]

    # ---------------------------------------------------------------- health

    def health(self) -> Health:
        """``GET /api/v1/health``."""
        return self._parse(self._request("GET", "/api/v1/health"), Health.from_dict, "health")

    # -------------------------------------------------------------- products

    def create_product(self, name: str, description: Optional[str] = None) -> Product:
        """Create a product. Raises ConflictError (``PRODUCT_EXISTS``) if the name is taken."""
        body: Dict[str, Any] = {"name": name}
        if description is not None:
            body["description"] = description
        return self._parse(self._request("POST", "/api/v1/products", body), Product.from_dict, "product")

    def get_product(self, name: str) -> Product:
        """Fetch a product by name. Raises NotFoundError (``PRODUCT_NOT_FOUND``)."""
        payload = self._request("GET", f"/api/v1/products/{_segment(name)}")
        return self._parse(payload, Product.from_dict, "product")

    def list_products(self) -> List[Product]:
        """All products."""
        return self._items(self._request("GET", "/api/v1/products"), Product.from_dict, "products")

    # -------------------------------------------------------------- releases

    def create_release(
        self, product_name: str, version: str, description: Optional[str] = None
    ) -> Release:
        """Create a release (status ``draft``) of an existing product."""
        body: Dict[str, Any] = {"product_name": product_name, "version": version}
        if description is not None:
            body["description"] = description
        return self._parse(self._request("POST", "/release", body), Release.from_dict, "release")

    def get_release(self, release: ReleaseRef) -> Release:
        """Fetch a release by id."""
        payload = self._request("GET", f"/api/v1/releases/{_release_id(release)}")
        return self._parse(payload, Release.from_dict, "release")

    def list_releases(self, product_name: str) -> List[Release]:
        """All releases of a product."""
        payload = self._request("GET", f"/api/v1/products/{_segment(product_name)}/releases")
        return self._items(payload, Release.from_dict, "releases")

    def get_latest_stable_release(self, product_name: str) -> Release:
        """The newest ``released`` release of a product.

        Raises NotFoundError with code ``PRODUCT_NOT_FOUND`` (unknown product)
        or ``NO_STABLE_RELEASE`` (nothing released yet).
        """
        payload = self._request("GET", f"/release/{_segment(product_name)}/latest")
        return self._parse(payload, Release.from_dict, "release")

    def get_latest_stable_version(self, product_name: str) -> str:
        """The version string of :meth:`get_latest_stable_release`, e.g. ``"1.2.0"``."""
        return self.get_latest_stable_release(product_name).version

    def set_release_status(self, release: ReleaseRef, status: ReleaseStatus) -> Release:
        """Move a release to ``status``.

        Allowed: draft->approved, draft->cancelled, approved->released,
        approved->cancelled, released->rolled_back; anything else raises
        ConflictError with code ``INVALID_STATUS_TRANSITION``.
        """
        payload = self._request(
            "PATCH", f"/api/v1/releases/{_release_id(release)}", {"status": status}
        )
        return self._parse(payload, Release.from_dict, "release")

    def approve_release(self, release: ReleaseRef) -> Release:
        """draft -> approved."""
        return self.set_release_status(release, "approved")

    def release(self, release: ReleaseRef) -> Release:
        """approved -> released (the release becomes the latest stable one)."""
        return self.set_release_status(release, "released")

    mark_released = release

    def cancel_release(self, release: ReleaseRef) -> Release:
        """draft or approved -> cancelled."""
        return self.set_release_status(release, "cancelled")

    def rollback_release(self, release: ReleaseRef) -> Release:
        """released -> rolled_back."""
        return self.set_release_status(release, "rolled_back")

    # --------------------------------------------------------------- signals

    def send_signal(
        self,
        product_name: str,
        version: str,
        name: str,
        value: float,
        kind: SignalKind = "gauge",
        tags: Optional[Mapping[str, str]] = None,
        timestamp: Optional[TimestampLike] = None,
        *,
        lane: Lane,
    ) -> Signal:
        """Record one signal on ``lane`` (``"stable"`` or ``"canary"``; keyword only).

        ``timestamp`` may be a ``datetime`` (sent as RFC 3339 UTC; naive means
        UTC) or a string sent as is; ``None`` lets the server stamp it.
        Raises NotFoundError (``RELEASE_NOT_FOUND``) for an unknown release.
        """
        body = SignalInput(
            product_name=product_name,
            version=version,
            lane=lane,
            name=name,
            value=value,
            kind=kind,
            tags=tags,
            timestamp=timestamp,
        ).to_dict()
        return self._parse(self._request("POST", "/signal", body), Signal.from_dict, "signal")

    def send_signal_to_canary(
        self,
        product_name: str,
        version: str,
        name: str,
        value: float,
        kind: SignalKind = "gauge",
        tags: Optional[Mapping[str, str]] = None,
        timestamp: Optional[TimestampLike] = None,
        lane: Lane = "canary",
    ) -> Signal:
        """:meth:`send_signal` with ``lane="canary"`` by default."""
        return self.send_signal(
            product_name, version, name, value, kind, tags, timestamp, lane=lane
        )

    def send_signals(self, signals: Iterable[SignalLike]) -> int:
        """Send many signals in one all-or-nothing batch; returns how many were accepted.

        Each item is a :class:`SignalInput` or a dict with the ``POST /signal``
        fields (a ``datetime`` timestamp in a dict is converted too). If the
        server rejects any signal, none is stored and the error is raised.
        An empty batch sends nothing and returns 0.
        """
        bodies = [_signal_body(item) for item in signals]
        if not bodies:
            return 0
        payload = self._request("POST", "/api/v1/signals/batch", {"signals": bodies})
        return self._parse(payload, lambda d: int(d["accepted"]), "batch result")


#: The name used by the original prototype client.
CanaryPyClient = SerinClient
