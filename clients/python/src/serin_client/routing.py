"""Local job routing: the same lane decision the Serin server makes, without asking it.

The lane of a *keyed* job is a pure function of the deployment id, the key and
the canary percentage, so a producer can route on its own and still agree with
the server (``GET /api/v1/canary/route``) and with every other SDK::

    h      = FNV-1a 64-bit over salt + b"\\x1f" + key   (UTF-8 bytes)
    bucket = h % 10000
    canary = bucket < percent * 100

The salt is the deployment id. A decision is keyed when the deployment has
``config.sticky_routing`` or uses the ``hash_ring`` strategy and the caller
gives a key; otherwise a uniformly random bucket decides.

Where a lane's jobs physically go (:func:`lane_target`):

============== ===================== =====================
strategy       stable                canary
============== ===================== =====================
split_queue    ``Q``                 ``Q:canary``
stream_group   ``Q``, group          ``Q``, group
               ``Q:stable``          ``Q:canary``
hash_ring      ``Q:stable``          ``Q:canary``
============== ===================== =====================

:class:`LocalRouter` keeps a deployment fetched from the server, refreshes it
in a background thread (every 15 s by default) and routes every job from that
copy without a request, for producers that route many jobs.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Tuple, Type

__all__ = [
    "BUCKETS",
    "ROUTING_STRATEGIES",
    "LIVE_STATUSES",
    "bucket",
    "in_canary",
    "lane_target",
    "route_locally",
    "LocalRouter",
    "RouteSource",
    "DEFAULT_REFRESH_INTERVAL",
]

#: Seconds between :class:`LocalRouter`'s background refreshes, by default.
DEFAULT_REFRESH_INTERVAL = 15.0

#: Keys hash into this many buckets; one percent of traffic is 100 buckets.
BUCKETS = 10_000

#: The routing strategies the server knows.
ROUTING_STRATEGIES = ("split_queue", "stream_group", "hash_ring")

#: Deployment statuses that still route traffic (``completed`` and ``failed`` don't).
LIVE_STATUSES = ("active", "promoting", "rolling_back", "paused")

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\x1f"


def _fnv1a64(data: bytes, h: int = _FNV_OFFSET) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


def bucket(salt: str, key: str) -> int:
    """The bucket (0..9999) of ``key`` under ``salt`` (the deployment id).

    >>> bucket("canary_1", "user-42")
    9810
    """
    if not isinstance(salt, str) or not isinstance(key, str):
        raise TypeError("salt and key must be strings")
    return _fnv1a64(key.encode("utf-8"), _salt_state(salt)) % BUCKETS


@functools.lru_cache(maxsize=256)
def _salt_state(salt: str) -> int:
    """The hash state after ``salt + 0x1F`` (a producer routes many keys under one salt)."""
    return _fnv1a64(_SEPARATOR, _fnv1a64(salt.encode("utf-8")))


def in_canary(bucket_: int, percent: int) -> bool:
    """Whether ``bucket_`` is in the canary share at ``percent`` (clamped to 0..100)."""
    percent = max(0, min(100, int(percent)))
    return bucket_ < percent * 100


def lane_target(queue: str, lane: str, routing_strategy: str = "split_queue") -> Tuple[str, Optional[str]]:
    """``(physical queue, consumer group or None)`` for ``lane`` of logical ``queue``.

    Producers publish to the physical queue; workers of ``lane`` consume from it
    (with the consumer group, for ``stream_group``).

    >>> lane_target("emails", "canary")
    ('emails:canary', None)
    >>> lane_target("emails", "stable", "stream_group")
    ('emails', 'emails:stable')
    """
    if lane not in ("stable", "canary"):
        raise ValueError(f"lane must be 'stable' or 'canary', not {lane!r}")
    if routing_strategy == "split_queue":
        return (queue if lane == "stable" else f"{queue}:canary"), None
    if routing_strategy == "stream_group":
        return queue, f"{queue}:{lane}"
    if routing_strategy == "hash_ring":
        return f"{queue}:{lane}", None
    raise ValueError(
        f"unknown routing strategy {routing_strategy!r} (expected one of {', '.join(ROUTING_STRATEGIES)})"
    )


def _no_deployment(queue: str) -> Dict[str, Any]:
    return {
        "deployment_id": None,
        "lane": "stable",
        "queue": queue,
        "consumer_group": None,
        "percentage": 0,
        "sticky": False,
        "bucket": None,
    }


def route_locally(
    deployment: Optional[Mapping[str, Any]],
    queue: str,
    key: Optional[str] = None,
    random_bucket: Optional[int] = None,
) -> Dict[str, Any]:
    """Decide where a job on logical ``queue`` goes, as the server would.

    ``deployment`` is the deployment object (``get_deployment``) live on
    ``queue``, or ``None`` when there is none; a deployment that is no longer
    live (``completed``, ``failed``) routes like ``None``. ``random_bucket``
    (0..9999) decides unkeyed jobs; when omitted a random one is drawn.

    Returns the server's route shape: ``deployment_id``, ``lane``, ``queue``
    (physical), ``consumer_group``, ``percentage``, ``sticky``, ``bucket``.
    """
    if random_bucket is not None:
        if isinstance(random_bucket, bool) or not isinstance(random_bucket, int):
            raise TypeError("random_bucket must be an int")
        if not 0 <= random_bucket < BUCKETS:
            raise ValueError(f"random_bucket must be in 0..{BUCKETS - 1}, not {random_bucket}")
    if key is not None and not isinstance(key, str):
        raise TypeError(f"key must be a string or None, not {type(key).__name__}")

    if deployment is None or deployment.get("status", "active") not in LIVE_STATUSES:
        return _no_deployment(queue)
    owner = deployment.get("queue_name")
    if owner is not None and owner != queue:
        raise ValueError(f"deployment {deployment.get('id')!r} is on queue {owner!r}, not {queue!r}")

    deployment_id = str(deployment["id"])
    percent = max(0, min(100, int(deployment.get("current_percent", 0))))
    config = deployment.get("config") or {}
    strategy = config.get("routing_strategy", "split_queue")
    key_bucket: Optional[int] = None
    if key is not None and (bool(config.get("sticky_routing")) or strategy == "hash_ring"):
        key_bucket = bucket(deployment_id, key)
    if key_bucket is not None:
        decider = key_bucket
    elif random_bucket is not None:
        decider = random_bucket
    else:
        decider = secrets.randbelow(BUCKETS)
    lane = "canary" if in_canary(decider, percent) else "stable"
    target, group = lane_target(queue, lane, strategy)
    return {
        "deployment_id": deployment_id,
        "lane": lane,
        "queue": target,
        "consumer_group": group,
        "percentage": percent,
        "sticky": key_bucket is not None,
        "bucket": key_bucket,
    }


class RouteSource(Protocol):
    """What :class:`LocalRouter` needs of a client (``SerinClient`` has it)."""

    def route(
        self, queue: str, key: Optional[str] = None, *, tenant_id: Optional[str] = None
    ) -> Mapping[str, Any]: ...

    def get_deployment(self, deployment_id: str) -> Mapping[str, Any]: ...


def _refresh_loop(
    ref: "weakref.ReferenceType[LocalRouter]", stop: threading.Event
) -> None:
    """The background thread's body.

    It holds the router only weakly between refreshes: a router dropped
    without :meth:`LocalRouter.close` is collected, and the thread then ends
    instead of refreshing for nobody until the process exits.
    """
    while True:
        router = ref()
        if router is None:
            return
        interval = router.refresh_interval
        del router
        if interval is None or stop.wait(interval):
            return
        router = ref()
        if router is None:
            return
        try:
            router._refresh_in_background()
        finally:
            del router


class LocalRouter:
    """Routes jobs of one logical queue locally from a deployment refreshed in the background.

    ::

        with LocalRouter(client, "emails") as router:   # first fetch now, then every 15 s
            decision = router.route("user-42")           # no request: same shape as client.route()
            redis.lpush(decision["queue"], payload)

    The first fetch happens in :meth:`start` (or at the first :meth:`route`,
    which starts the router) and raises if it fails: without a deployment
    there is nothing to route from. After that, a daemon thread refreshes
    every ``refresh_interval`` seconds: it asks the server which deployment
    is live on the queue (``client.route(queue)``) and fetches it
    (``client.get_deployment``). :meth:`route` never waits for the network;
    a change of percentage reaches it within one interval. A failed refresh
    keeps the last good deployment (the error is in :attr:`last_error`) and
    the next interval tries again, so a server restart does not stop
    producers. ``refresh_interval=None`` starts no thread: only
    :meth:`refresh` updates the deployment.

    :meth:`close` (or leaving the ``with`` block) stops the thread; a
    router dropped without it stops its thread once collected. ``clock``
    stamps :attr:`last_refresh` (tests pass a fake one).
    """

    def __init__(
        self,
        client: RouteSource,
        queue: str,
        refresh_interval: Optional[float] = DEFAULT_REFRESH_INTERVAL,
        tenant_id: Optional[str] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_interval is not None and not refresh_interval > 0:
            raise ValueError("refresh_interval must be positive (or None: refresh by hand)")
        self.client = client
        self.queue = queue
        self.refresh_interval = refresh_interval
        self.tenant_id = tenant_id
        #: Successful refreshes so far (the first fetch included).
        self.refreshes = 0
        #: The error of the latest refresh, or ``None`` if it succeeded.
        self.last_error: Optional[BaseException] = None
        self._clock = clock
        self._lock = threading.Lock()  # one refresh at a time
        self._state_lock = threading.Lock()  # start/close
        self._deployment: Optional[Mapping[str, Any]] = None
        self._fetched_at: Optional[float] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    @property
    def deployment(self) -> Optional[Mapping[str, Any]]:
        """The deployment last fetched (``None``: no live deployment on the queue)."""
        return self._deployment

    @property
    def last_refresh(self) -> Optional[float]:
        """``clock()`` at the last successful refresh (``None`` before the first)."""
        return self._fetched_at

    @property
    def running(self) -> bool:
        """Whether the background thread is refreshing."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    # ----------------------------------------------------------- lifecycle

    def start(self) -> "LocalRouter":
        """Fetch the deployment now (raising if that fails) and start the background refresh.

        Does nothing when already started. Raises RuntimeError after :meth:`close`.
        """
        with self._state_lock:
            if self._closed:
                raise RuntimeError("this LocalRouter is closed")
            if self._fetched_at is None:
                self.refresh()
            if self.refresh_interval is not None and self._thread is None:
                self._thread = threading.Thread(
                    target=_refresh_loop,
                    args=(weakref.ref(self), self._stop),
                    name=f"serin-router-{self.queue}",
                    daemon=True,  # never keeps a producer's process alive
                )
                self._thread.start()
        return self

    def close(self, timeout: Optional[float] = 5.0) -> None:
        """Stop the background refresh (waits up to ``timeout`` for a refresh in progress)."""
        with self._state_lock:
            self._closed = True
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> "LocalRouter":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # ------------------------------------------------------------- refresh

    def refresh(self) -> Optional[Mapping[str, Any]]:
        """Fetch the live deployment now and return it.

        If the fetch fails, the error is kept in :attr:`last_error` and the
        last good deployment returned; only when there is none yet is the
        error raised.
        """
        with self._lock:
            try:
                deployment = self._fetch()
            except Exception as exc:
                self.last_error = exc
                if self._fetched_at is None:
                    raise
                return self._deployment
            self._deployment = deployment
            self._fetched_at = self._clock()
            self.last_error = None
            self.refreshes += 1
            return deployment

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except Exception:  # recorded in last_error; a thread has nobody to raise to
            pass

    def _fetch(self) -> Optional[Mapping[str, Any]]:
        if self.tenant_id is None:
            answer = self.client.route(self.queue)
        else:
            answer = self.client.route(self.queue, tenant_id=self.tenant_id)
        deployment_id = answer.get("deployment_id")
        return self.client.get_deployment(str(deployment_id)) if deployment_id else None

    # ------------------------------------------------------------- routing

    def route(self, key: Optional[str] = None, random_bucket: Optional[int] = None) -> Dict[str, Any]:
        """Where a job with ``key`` goes (see :func:`route_locally`), from the cached deployment.

        The first call on a router not yet started starts it (one fetch).
        """
        if self._fetched_at is None:
            self.start()
        return route_locally(self._deployment, self.queue, key, random_bucket)
