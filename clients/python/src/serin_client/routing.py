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

:class:`LocalRouter` keeps a deployment fetched from the server and refreshes
it at most once per interval, for producers that route many jobs.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

__all__ = [
    "BUCKETS",
    "ROUTING_STRATEGIES",
    "LIVE_STATUSES",
    "bucket",
    "in_canary",
    "lane_target",
    "route_locally",
    "LocalRouter",
]

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


class LocalRouter:
    """Routes jobs of one logical queue locally, refreshing the deployment now and then.

    ::

        router = LocalRouter(client, "emails")         # refresh at most once a second
        decision = router.route("user-42")             # same shape as client.route()
        redis.lpush(decision["queue"], payload)

    A refresh asks the server which deployment is live on the queue
    (``client.route(queue)``) and fetches it (``client.get_deployment``). If a
    refresh fails after a first success, the last deployment keeps being used
    (the error is kept in :attr:`last_error`) and the next call tries again; if
    the very first fetch fails, the error is raised.
    """

    def __init__(
        self,
        client: Any,
        queue: str,
        refresh_interval: float = 1.0,
        tenant_id: Optional[str] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_interval < 0:
            raise ValueError("refresh_interval must not be negative")
        self.client = client
        self.queue = queue
        self.refresh_interval = refresh_interval
        self.tenant_id = tenant_id
        self.refreshes = 0
        self.last_error: Optional[BaseException] = None
        self._clock = clock
        self._lock = threading.Lock()
        self._deployment: Optional[Dict[str, Any]] = None
        self._fetched_at: Optional[float] = None

    @property
    def deployment(self) -> Optional[Dict[str, Any]]:
        """The deployment last fetched (``None``: no live deployment on the queue)."""
        return self._deployment

    def refresh(self) -> Optional[Dict[str, Any]]:
        """Fetch the live deployment now."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> Optional[Dict[str, Any]]:
        now = self._clock()
        try:
            if self.tenant_id is None:
                answer = self.client.route(self.queue)
            else:
                answer = self.client.route(self.queue, tenant_id=self.tenant_id)
            deployment_id = answer.get("deployment_id")
            deployment = self.client.get_deployment(deployment_id) if deployment_id else None
        except Exception as exc:
            self.last_error = exc
            if self._fetched_at is None:
                raise
            # Keep the last deployment; try again after another interval.
            self._fetched_at = now
            return self._deployment
        self._deployment = deployment
        self._fetched_at = now
        self.last_error = None
        self.refreshes += 1
        return deployment

    def _current(self) -> Optional[Dict[str, Any]]:
        with self._lock:
            if self._fetched_at is None or self._clock() - self._fetched_at >= self.refresh_interval:
                self._refresh_locked()
            return self._deployment

    def route(self, key: Optional[str] = None, random_bucket: Optional[int] = None) -> Dict[str, Any]:
        """Where a job with ``key`` goes (see :func:`route_locally`)."""
        return route_locally(self._current(), self.queue, key, random_bucket)
