"""The HTTP client for the Serin server (stdlib only: ``http.client`` + ``json``).

Configuration: ``SerinClient()`` with no arguments talks to ``$SERIN_URL``
(default ``http://127.0.0.1:8080``) with the key in ``$SERIN_API_KEY``, if
set; arguments given explicitly win over the environment.

Connections are kept alive and reused between calls (see ``_http``); a 429
with ``Retry-After`` is waited out and sent again, up to ``max_retry_wait``
seconds per call; list calls follow every page.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    TypeVar,
    Union,
)

from ._http import ConnectionPool, Response, parse_retry_after
from ._time import TimestampLike, timestamp_to_wire
from ._version import __version__
from .errors import (
    INVALID_RESPONSE_CODE,
    SerinConnectionError,
    SerinError,
    SerinTimeoutError,
    ServerError,
    WatchTimeoutError,
    error_from_response,
)
from .models import (
    ActionAnswer,
    Deployment,
    DeploymentStatus,
    Health,
    Lane,
    PercentageAnswer,
    Product,
    Release,
    ReleaseStatus,
    RolloutStatus,
    Signal,
    SignalInput,
    SignalKind,
    SignalLike,
)

__all__ = [
    "SerinClient",
    "CanaryPyClient",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_RETRY_WAIT",
    "PAGE_SIZE",
    "ENV_URL",
    "ENV_API_KEY",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0
#: Longest a call waits out 429s in all, by default (the Rust client's figure too).
DEFAULT_MAX_RETRY_WAIT = 30.0
#: Items asked for per page when a list call follows the pages (the server's maximum).
PAGE_SIZE = 100
#: Environment variable read for the base URL when none is given.
ENV_URL = "SERIN_URL"
#: Environment variable read for the API key when none is given.
ENV_API_KEY = "SERIN_API_KEY"

# A Retry-After below this is waited as this: "0" would otherwise let one call
# retry without bound while adding nothing to its total wait.
_MIN_RETRY_WAIT = 1.0

# Indirection so the tests can watch the client wait without waiting.
_sleep = time.sleep

T = TypeVar("T")
ReleaseRef = Union[int, Release]
DeploymentRef = Union[str, Deployment]


def _release_id(release: ReleaseRef) -> int:
    if isinstance(release, Release):
        return release.id
    if isinstance(release, bool) or not isinstance(release, int):
        raise TypeError(f"release must be an int id or a Release, not {type(release).__name__}")
    return release


def _deployment_id(deployment: DeploymentRef) -> str:
    if isinstance(deployment, Deployment):
        return deployment.id
    if not isinstance(deployment, str):
        raise TypeError(
            f"deployment must be an id string or a Deployment, not {type(deployment).__name__}"
        )
    return deployment


def _segment(value: str) -> str:
    """Quote one path segment (product names may hold any character)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return urllib.parse.quote(value, safe="")


def _query(params: Mapping[str, Any]) -> str:
    """``?a=1&b=x`` of the params that are not ``None`` (empty string if none are)."""
    given = {k: str(v) for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(given, quote_via=urllib.parse.quote) if given else ""


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

    >>> client = SerinClient("http://127.0.0.1:8080")
    >>> client.get_latest_stable_version("web")  # doctest: +SKIP
    '1.2.0'

    ``base_url`` defaults to ``$SERIN_URL``, then ``http://127.0.0.1:8080``;
    ``api_key`` (sent as ``Authorization: Bearer``) to ``$SERIN_API_KEY``.
    Pass ``api_key=""`` for a client that sends no key whatever the
    environment says. ``timeout`` (seconds, ``None``: wait forever) bounds
    each connect and each read, not a whole call. ``max_retry_wait`` is the
    most one call waits out 429 answers in all (0: never wait).

    Every failed call raises a :class:`serin_client.SerinError` subclass.
    The client keeps connections open for reuse and is safe to share between
    threads; :meth:`close` (or ``with SerinClient() as client:``) closes the
    idle ones, after which the client still works and reconnects.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        *,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
    ) -> None:
        if base_url is None:
            base_url = os.environ.get(ENV_URL) or DEFAULT_BASE_URL
        if api_key is None:
            api_key = os.environ.get(ENV_API_KEY)
        if max_retry_wait < 0:
            raise ValueError("max_retry_wait must not be negative")
        self.api_key: Optional[str] = api_key or None
        self.timeout = timeout
        self.max_retry_wait = float(max_retry_wait)
        self._pool_lock = threading.Lock()
        self._pool: Optional[ConnectionPool] = None
        self.base_url = base_url

    @property
    def base_url(self) -> str:
        """The server's URL, without a trailing slash. Setting it drops the open connections."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"base_url must be a string, not {type(value).__name__}")
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"base_url has an invalid port: {value!r}") from None
        pool = ConnectionPool(parts.scheme, parts.hostname, port)
        with self._pool_lock:
            old, self._pool = self._pool, pool
            self._base_url = value.rstrip("/")
            self._base_path = parts.path.rstrip("/")
        if old is not None:
            old.close()
        # Close the sockets when the client is collected, not when the GC gets
        # to each socket (which warns about every one of them).
        weakref.finalize(self, pool.close)

    def close(self) -> None:
        """Close the idle connections (the client stays usable)."""
        with self._pool_lock:
            pool = self._pool
        if pool is not None:
            pool.close()

    def __enter__(self) -> "SerinClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        auth = ", api_key=***" if self.api_key else ""
        return f"{type(self).__name__}(base_url={self.base_url!r}{auth}, timeout={self.timeout!r})"

    # ------------------------------------------------------------------ HTTP

    def _send(self, method: str, path: str, data: Optional[bytes], headers: Dict[str, str]) -> Response:
        """One exchange, with transport failures as SerinConnectionError/SerinTimeoutError."""
        with self._pool_lock:
            pool, target = self._pool, self._base_path + path
        assert pool is not None
        where = f"{method} {self.base_url}{path}"
        try:
            return pool.request(method, target, data, headers, self.timeout)
        except (socket.timeout, TimeoutError) as exc:  # distinct classes before Python 3.10
            raise SerinTimeoutError(message=f"{where}: timed out after {self.timeout}s") from exc
        except (ConnectionRefusedError, socket.gaierror) as exc:
            raise SerinConnectionError(message=f"{where}: cannot connect: {exc}") from exc
        except (http.client.HTTPException, OSError) as exc:
            raise SerinConnectionError(message=f"{where}: connection failed: {exc!r}") from exc

    def _request(self, method: str, path: str, body: Optional[Any] = None) -> Any:
        """Send one request and return the decoded JSON body (``None`` if empty).

        A 429 with a ``Retry-After`` is sent again after that wait (at least
        one second), as long as the waits of this call add up to at most
        ``max_retry_wait``; otherwise it raises RateLimitedError at once. This
        holds for every method: the server's rate limit refuses a request
        before doing any of its work.
        """
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

        waited = 0.0
        while True:
            response = self._send(method, path, data, headers)
            if response.status != 429:
                break
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                break
            wait = max(retry_after, _MIN_RETRY_WAIT)
            if waited + wait > self.max_retry_wait:
                break
            _sleep(wait)
            waited += wait

        status, raw = response.status, response.body
        if status >= 400:
            raise error_from_response(
                status,
                raw,
                response.reason,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SerinError(
                status,
                INVALID_RESPONSE_CODE,
                f"{method} {self.base_url}{path}: response is not valid JSON",
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

    def _pages(
        self,
        path: str,
        key: str,
        parse: Callable[[Any], T],
        what: str,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Iterator[T]:
        """Every item of a paged list, fetching page after page as the iteration needs them.

        Pages are numbered (``page``, ``page_size``) and the answer says
        whether another follows (``pagination.has_next``). Items are
        de-duplicated by ``id``: an item created while we read shifts the
        later pages by one, which would otherwise show an item twice. An
        answer without ``pagination`` (an older server) is the whole list.
        """
        page = 1
        seen: Set[Union[int, str]] = set()
        while True:
            query = _query(dict(params or {}, page=page, page_size=PAGE_SIZE))
            payload = self._request("GET", path + query)
            items = payload.get(key) if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise SerinError(
                    None, INVALID_RESPONSE_CODE, f"expected {{{key!r}: [...]}} of {what}"
                )
            for item in items:
                ident = item.get("id") if isinstance(item, dict) else None
                if isinstance(ident, (int, str)):
                    if ident in seen:
                        continue
                    seen.add(ident)
                yield self._parse(item, parse, what)
            pagination = payload.get("pagination")
            # An empty page that claims a next one would loop forever: stop.
            if not isinstance(pagination, dict) or pagination.get("has_next") is not True or not items:
                return
            page += 1

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
        """All products, by name (every page: see :meth:`iter_products`)."""
        return list(self.iter_products())

    def iter_products(self) -> Iterator[Product]:
        """All products, by name, fetched a page (100) at a time as the iteration goes.

        Errors are raised when the page that fails is reached.
        """
        return self._pages("/api/v1/products", "items", Product.from_dict, "products")

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
        """All releases of a product, newest first (every page: see :meth:`iter_releases`)."""
        return list(self.iter_releases(product_name))

    def iter_releases(self, product_name: str) -> Iterator[Release]:
        """All releases of a product, newest first, fetched a page at a time.

        Raises NotFoundError (``PRODUCT_NOT_FOUND``) when the first page is asked for.
        """
        path = f"/api/v1/products/{_segment(product_name)}/releases"
        return self._pages(path, "items", Release.from_dict, "releases")

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

    def _deployment_path(self, deployment: DeploymentRef, action: str = "") -> str:
        return f"/api/v1/canary/deployments/{_segment(_deployment_id(deployment))}{action}"

    def create_deployment(
        self, queue_name: str, stable_version: str, canary_version: str, **fields: Any
    ) -> Deployment:
        """Start a canary deployment on ``queue_name``; returns the deployment.

        ``fields`` are sent as they are: ``percentage`` (0-100),
        ``routing_strategy`` (``split_queue``, ``stream_group``, ``hash_ring``),
        ``sticky_routing``, ``profile``, ``tenant_id``, ``auto_promotion``,
        ``rollback_thresholds``, ``metadata``, ``rollout``, ... (``None``
        values are left out). Raises ConflictError if the queue already has a
        live deployment.
        """
        body: Dict[str, Any] = {
            "queue_name": queue_name,
            "stable_version": stable_version,
            "canary_version": canary_version,
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        payload = self._request("POST", "/api/v1/canary/deployments", body)
        return self._parse(payload, Deployment.from_dict, "deployment")

    def get_deployment(self, deployment: DeploymentRef) -> Deployment:
        """One deployment. Raises NotFoundError (``DEPLOYMENT_NOT_FOUND``)."""
        payload = self._request("GET", self._deployment_path(deployment))
        return self._parse(payload, Deployment.from_dict, "deployment")

    def list_deployments(
        self,
        status: Optional[DeploymentStatus] = None,
        queue_name: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> List[Deployment]:
        """Every deployment matching the filters, newest first (see :meth:`iter_deployments`)."""
        return list(self.iter_deployments(status, queue_name, tenant_id))

    def iter_deployments(
        self,
        status: Optional[DeploymentStatus] = None,
        queue_name: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> Iterator[Deployment]:
        """Deployments, newest first, fetched a page at a time; ``None`` filters are left out."""
        params = {"status": status, "queue_name": queue_name, "tenant_id": tenant_id}
        return self._pages(
            "/api/v1/canary/deployments", "deployments", Deployment.from_dict, "deployments", params
        )

    def set_percentage(self, deployment: DeploymentRef, percentage: int) -> PercentageAnswer:
        """Set the canary share; returns ``{"success", "percentage", "updated_at"}`` as a
        :class:`PercentageAnswer` (the server answers with that, not the deployment)."""
        if isinstance(percentage, bool):
            raise TypeError("percentage must be a number, not a bool")
        payload = self._request(
            "PUT", self._deployment_path(deployment, "/percentage"), {"percentage": percentage}
        )
        return self._parse(payload, PercentageAnswer.from_dict, "percentage answer")

    def promote(self, deployment: DeploymentRef) -> ActionAnswer:
        """Promote the canary to 100% (the deployment becomes ``completed``).

        Returns the server's :class:`ActionAnswer` (``success``, ``message``,
        ``timestamp``); :meth:`get_deployment` reads the deployment after.
        """
        payload = self._request("POST", self._deployment_path(deployment, "/promote"))
        return self._parse(payload, ActionAnswer.from_dict, "promote answer")

    def rollback(self, deployment: DeploymentRef, reason: Optional[str] = None) -> ActionAnswer:
        """Roll back to stable (canary 0%, ``failed``), recording ``reason``."""
        body: Dict[str, Any] = {} if reason is None else {"reason": reason}
        payload = self._request("POST", self._deployment_path(deployment, "/rollback"), body)
        return self._parse(payload, ActionAnswer.from_dict, "rollback answer")

    def deployment_metrics(self, deployment: DeploymentRef) -> Dict[str, Any]:
        """``{"stable": snapshot, "canary": snapshot}`` over the metrics window."""
        payload = self._request("GET", self._deployment_path(deployment, "/metrics"))
        return self._object(payload, "metrics")

    def deployment_health(self, deployment: DeploymentRef) -> Dict[str, Any]:
        """The health report; ``overall_status`` is healthy, warning, failing or unknown."""
        payload = self._request("GET", self._deployment_path(deployment, "/health"))
        return self._object(payload, "health report")

    # --------------------------------------------------------------- rollouts

    def start_rollout(
        self,
        queue_name: str,
        stable_version: str,
        canary_version: str,
        plan: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]],
        **fields: Any,
    ) -> Deployment:
        """Start a deployment that Serin's controller drives through ``plan``.

        ``plan`` is the rollout plan (``{"steps": [...], "judges": {...},
        "hooks": [...], ...}``, see docs/rollouts.md) or just its list of
        steps::

            client.start_rollout("web", "1.4", "1.5", [
                {"set_weight": 10}, {"analysis": {"window": "2m"}},
                {"set_weight": 50}, {"pause": {}},          # until continue_rollout()
                {"set_weight": 100},
            ], auto_promotion=True)

        ``fields`` are the deployment's own (``auto_promotion``,
        ``min_duration``, ``max_duration``, ``metrics_window``, ``profile``,
        ``routing_strategy``...), as for :meth:`create_deployment`. Leave
        ``percentage`` out: the steps set the weights. Follow it with
        :meth:`rollout_status` or :meth:`watch`.
        """
        if isinstance(plan, Mapping):
            rollout = dict(plan)
        elif isinstance(plan, (str, bytes)) or not isinstance(plan, Sequence):
            raise TypeError("plan must be a mapping or a sequence of steps")
        else:
            rollout = {"steps": [dict(step) for step in plan]}
        if not rollout.get("steps"):
            raise ValueError("a rollout plan needs at least one step")
        return self.create_deployment(
            queue_name, stable_version, canary_version, rollout=rollout, **fields
        )

    def rollout_status(self, deployment: DeploymentRef) -> RolloutStatus:
        """The rollout's steps, what it waits for and its latest judgement.

        Raises ValidationError for a deployment without a plan.
        """
        payload = self._request("GET", self._deployment_path(deployment, "/rollout"))
        return self._parse(payload, RolloutStatus.from_dict, "rollout")

    def continue_rollout(self, deployment: DeploymentRef) -> RolloutStatus:
        """Go past a pause without a duration or an approval gate (or confirm a held weight)."""
        payload = self._request("POST", self._deployment_path(deployment, "/continue"))
        return self._parse(payload, RolloutStatus.from_dict, "rollout")

    def abort(self, deployment: DeploymentRef) -> ActionAnswer:
        """Send all traffic to stable now; the deployment fails with "aborted by ..."."""
        payload = self._request("POST", self._deployment_path(deployment, "/abort"))
        return self._parse(payload, ActionAnswer.from_dict, "abort answer")

    def watch(
        self,
        deployment: DeploymentRef,
        timeout: Optional[float] = 600.0,
        poll_interval: float = 2.0,
        on_update: Optional[Callable[[Deployment], None]] = None,
    ) -> Deployment:
        """Wait until the deployment ends and return it (``completed`` or ``failed``).

        Polls :meth:`get_deployment` every ``poll_interval`` seconds; the
        controller moves a rollout at most once a second, so polling faster
        buys little. ``on_update`` is called with the first state seen and
        with every changed one (a new ``revision``), e.g. to print progress.
        A ``paused`` deployment is not over (someone may resume it): the
        watch goes on. After ``timeout`` seconds (``None``: no limit) it
        raises :class:`WatchTimeoutError` carrying the last state seen.

        Connection failures and 5xx answers in between are tried again on the
        next poll (the rollout doesn't depend on being watched; one that
        happens past the deadline is raised as it is); any other error, such
        as NotFoundError, is raised at once.
        """
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        deployment_id = _deployment_id(deployment)
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Optional[Deployment] = None
        while True:
            try:
                current: Optional[Deployment] = self.get_deployment(deployment_id)
            except (SerinConnectionError, ServerError):
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                current = None
            if current is not None:
                changed = last is None or (current.revision, current.status) != (
                    last.revision,
                    last.status,
                )
                if on_update is not None and changed:
                    on_update(current)
                last = current
                if current.is_final:
                    return current
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = f"still {last.status} at {last.current_percent}%" if last else "never read"
                    raise WatchTimeoutError(
                        message=f"deployment {deployment_id} did not end within {timeout}s ({state})",
                        details={"deployment_id": deployment_id},
                        deployment=last,
                    )
                _sleep(min(poll_interval, remaining))
            else:
                _sleep(poll_interval)

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
        AuthError (401, ``INVALID_CREDENTIALS``), ForbiddenError (403,
        ``USER_DISABLED``) or RateLimitedError (``LOGIN_THROTTLED``, once the
        ``Retry-After`` no longer fits in ``max_retry_wait``).
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
