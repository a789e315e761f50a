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

    # ------------------------------------------------------ canary deployments

    def _object(self, payload: Any, what: str) -> Dict[str, Any]:
        """A JSON object answer as a dict, or SerinError(INVALID_RESPONSE)."""
        if not isinstance(payload, dict):
            raise SerinError(None, INVALID_RESPONSE_CODE, f"expected a JSON object ({what})")
        return payload

    def create_deployment(
        self, queue_name: str, stable_version: str, canary_version: str, **fields: Any
    ) -> Dict[str, Any]:
        """Start a canary deployment on ``queue_name``; returns the deployment.

        ``fields`` are sent as they are: ``percentage`` (0-100),
        ``routing_strategy`` (``split_queue``, ``stream_group``, ``hash_ring``),
        ``sticky_routing``, ``profile``, ``tenant_id``, ``auto_promotion``,
        ``rollback_thresholds``, ``metadata``, ... (``None`` values are left out).
        Raises ConflictError if the queue already has a live deployment.
        """
        body: Dict[str, Any] = {
            "queue_name": queue_name,
            "stable_version": stable_version,
            "canary_version": canary_version,
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        payload = self._request("POST", "/api/v1/canary/deployments", body)
        return self._object(payload, "deployment")

    def get_deployment(self, deployment_id: str) -> Dict[str, Any]:
        """One deployment. Raises NotFoundError (``DEPLOYMENT_NOT_FOUND``)."""
        payload = self._request("GET", f"/api/v1/canary/deployments/{_segment(deployment_id)}")
        return self._object(payload, "deployment")

    def set_percentage(self, deployment_id: str, percentage: int) -> Dict[str, Any]:
        """Set the canary share; returns ``{"success", "percentage", "updated_at"}``."""
        if isinstance(percentage, bool):
            raise TypeError("percentage must be a number, not a bool")
        payload = self._request(
            "PUT",
            f"/api/v1/canary/deployments/{_segment(deployment_id)}/percentage",
            {"percentage": percentage},
        )
        return self._object(payload, "percentage answer")

    def promote(self, deployment_id: str) -> Dict[str, Any]:
        """Promote the canary to 100% (the deployment becomes ``completed``)."""
        payload = self._request(
            "POST", f"/api/v1/canary/deployments/{_segment(deployment_id)}/promote"
        )
        return self._object(payload, "promote answer")

    def rollback(self, deployment_id: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """Roll back to stable (canary 0%, ``failed``), recording ``reason``."""
        body: Dict[str, Any] = {} if reason is None else {"reason": reason}
        payload = self._request(
            "POST", f"/api/v1/canary/deployments/{_segment(deployment_id)}/rollback", body
        )
        return self._object(payload, "rollback answer")

    def deployment_metrics(self, deployment_id: str) -> Dict[str, Any]:
        """``{"stable": snapshot, "canary": snapshot}`` over the metrics window."""
        payload = self._request(
            "GET", f"/api/v1/canary/deployments/{_segment(deployment_id)}/metrics"
        )
        return self._object(payload, "metrics")

    def deployment_health(self, deployment_id: str) -> Dict[str, Any]:
        """The health report; ``overall_status`` is healthy, warning, failing or unknown."""
        payload = self._request(
            "GET", f"/api/v1/canary/deployments/{_segment(deployment_id)}/health"
        )
        return self._object(payload, "health report")

    def route(
        self, queue: str, key: Optional[str] = None, *, tenant_id: Optional[str] = None
    ) -> Dict[str, Any]:
        """Ask the server where a job on logical ``queue`` goes.

        Returns ``{"deployment_id", "lane", "queue", "consumer_group",
        "percentage", "sticky", "bucket"}``; :func:`serin_client.route_locally`
        computes the same answer without a request.
        """
        params: Dict[str, str] = {"queue": queue}
        if key is not None:
            params["key"] = key
        if tenant_id is not None:
            params["tenant_id"] = tenant_id
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        return self._object(self._request("GET", f"/api/v1/canary/route?{query}"), "route")

    # ---------------------------------------------------------------- workers

    def register_worker(
        self,
        worker_id: str,
        version: str,
        lane: Lane,
        queues: Union[str, Iterable[str]],
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Register (or re-register) a worker of ``lane`` consuming logical ``queues``."""
        queue_list = [queues] if isinstance(queues, str) else list(queues)
        body: Dict[str, Any] = {
            "id": worker_id,
            "version": version,
            "lane": lane,
            "queues": queue_list,
        }
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return self._object(self._request("POST", "/api/v1/canary/workers", body), "worker")

    def heartbeat(
        self,
        worker_id: str,
        metrics: Optional[Mapping[str, Any]] = None,
        job_results: Optional[Iterable[Mapping[str, Any]]] = None,
        status: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Report a worker alive, with its metrics and the jobs finished since the last beat.

        ``metrics``: ``jobs_processed``, ``jobs_succeeded``, ``jobs_failed``,
        ``avg_processing_time`` (ms), ``memory_usage_mb``, ``cpu_usage_percent``,
        ``last_job_at``. Each job result: ``{"queue", "success", "duration_ms"?,
        "timestamp"?}`` where ``queue`` is the *logical* queue; the results
        count for the worker's lane on that queue's live deployment. Datetimes
        are sent as RFC 3339 UTC. Returns the worker.
        """
        body: Dict[str, Any] = {"job_results": []}
        if metrics is not None:
            m = dict(metrics)
            if m.get("last_job_at") is not None:
                m["last_job_at"] = timestamp_to_wire(m["last_job_at"])
            body["metrics"] = m
        for result in job_results or ():
            r = dict(result)
            if r.get("timestamp") is not None:
                r["timestamp"] = timestamp_to_wire(r["timestamp"])
            body["job_results"].append(r)
        if status is not None:
            body["status"] = status
        payload = self._request(
            "POST", f"/api/v1/canary/workers/{_segment(worker_id)}/heartbeat", body
        )
        return self._object(payload, "worker")

    # ------------------------------------------------------- release manager

    def login(self, email: str, password: str) -> Dict[str, Any]:
        """Log in as a user; this client then sends the session token.

        Returns ``{"token", "token_type", "expires_at", "user"}``. Raises
        UnauthorizedError (``INVALID_CREDENTIALS``), ForbiddenError
        (``USER_DISABLED``) or RateLimitedError (``LOGIN_THROTTLED``).
        """
        payload = self._request(
            "POST", "/api/v1/auth/login", {"email": email, "password": password}
        )
        session = self._object(payload, "session")
        self.api_key = session["token"]
        return session

    def logout(self) -> None:
        """End this client's session (it then sends no credentials)."""
        self._request("POST", "/api/v1/auth/logout")
        self.api_key = None

    def me(self) -> Dict[str, Any]:
        """Who is calling: ``{"kind": "user"|"api_key", "name", "role", ...}``."""
        return self._object(self._request("GET", "/api/v1/users/me"), "caller")

    def create_user(self, email: str, name: str, role: str, password: str) -> Dict[str, Any]:
        """Create a user (admins)."""
        body = {"email": email, "name": name, "role": role, "password": password}
        return self._object(self._request("POST", "/api/v1/users", body), "user")

    def environments(self, product_name: str) -> List[Dict[str, Any]]:
        """A product's environments, in promotion order."""
        payload = self._request(
            "GET", f"/api/v1/products/{_segment(product_name)}/environments"
        )
        return list(self._object(payload, "environments")["items"])

    def deploy(
        self, release: ReleaseRef, environment: str, strategy: str = "direct", **fields: Any
    ) -> Dict[str, Any]:
        """Deploy a release to an environment; returns seed 003's deployment.

        ``strategy``: ``direct``, ``canary`` or ``blue_green``. ``fields``:
        ``endpoints`` (where the new version runs), ``route``, ``rollout``,
        ``profile``, ``bake_time``. Raises ConflictError with
        ``PREVIOUS_ENVIRONMENT_NOT_PASSED`` when the previous environment hasn't
        passed, and others the API reference lists.
        """
        body: Dict[str, Any] = {"environment": environment, "strategy": strategy}
        body.update({k: v for k, v in fields.items() if v is not None})
        payload = self._request("POST", f"/api/v1/releases/{_release_id(release)}/deploy", body)
        return self._object(payload, "deployment")

    def approve(
        self, release: ReleaseRef, environment: str, comment: Optional[str] = None
    ) -> Dict[str, Any]:
        """Approve a release for an environment (needs a logged-in user)."""
        return self._decide(release, environment, "approved", comment)

    def reject(
        self, release: ReleaseRef, environment: str, comment: Optional[str] = None
    ) -> Dict[str, Any]:
        """Reject a release for an environment; a deployment waiting for it rolls back."""
        return self._decide(release, environment, "rejected", comment)

    def _decide(
        self, release: ReleaseRef, environment: str, decision: str, comment: Optional[str]
    ) -> Dict[str, Any]:
        body = {"environment": environment, "decision": decision, "comment": comment}
        payload = self._request(
            "POST", f"/api/v1/releases/{_release_id(release)}/approvals", body
        )
        return self._object(payload, "decision")

    def release_deployment(self, deployment_id: str) -> Dict[str, Any]:
        """Seed 003's view of a deployment: ``status`` is ``pending``,
        ``in_progress``, ``succeeded``, ``failed`` or ``rolled_back``."""
        payload = self._request("GET", f"/api/v1/deployments/{_segment(deployment_id)}")
        return self._object(payload, "deployment")

    def rollback_deployment(self, deployment_id: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """One-click rollback to the previous release of the deployment's environment."""
        body: Dict[str, Any] = {} if reason is None else {"reason": reason}
        payload = self._request(
            "POST", f"/api/v1/deployments/{_segment(deployment_id)}/rollback", body
        )
        return self._object(payload, "deployment")

    def release_notes(self, release: ReleaseRef, environment: Optional[str] = None) -> str:
        """A release's notes in Markdown (for an environment)."""
        query = "" if environment is None else f"?environment={_segment(environment)}"
        payload = self._request("GET", f"/api/v1/releases/{_release_id(release)}/notes{query}")
        return str(self._object(payload, "notes")["markdown"])


#: The name used by the original prototype client.
CanaryPyClient = SerinClient
