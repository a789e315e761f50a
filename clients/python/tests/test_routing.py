"""Unit tests of local job routing (no server needed)."""

from __future__ import annotations

import gc
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import pytest

import serin_client
from serin_client import BUCKETS, LocalRouter, bucket, in_canary, lane_target, route_locally
from serin_client.routing import DEFAULT_REFRESH_INTERVAL
from serin_client.errors import SerinConnectionError


def deployment(
    percent: int,
    strategy: str = "split_queue",
    sticky: bool = True,
    id: str = "canary_1",
    queue: str = "jobs",
    status: str = "active",
) -> Dict[str, Any]:
    return {
        "id": id,
        "queue_name": queue,
        "current_percent": percent,
        "status": status,
        "config": {"routing_strategy": strategy, "sticky_routing": sticky},
    }


# ---------------------------------------------------------------- the hash


def test_reference_buckets() -> None:
    # Pinned by the server's routing module; every SDK must reproduce them.
    assert bucket("canary_1", "user-42") == 9810
    assert bucket("d", "k") == 1725


def test_bucket_is_fnv1a_over_salt_separator_key() -> None:
    def fnv(data: bytes) -> int:
        h = 0xCBF29CE484222325
        for b in data:
            h = ((h ^ b) * 0x100000001B3) % 2**64
        return h

    for salt, key in [("canary_1", "user-42"), ("", ""), ("d", "k"), ("dép", "ключ-🙂")]:
        expected = fnv(salt.encode() + b"\x1f" + key.encode()) % 10000
        assert bucket(salt, key) == expected


def test_separator_matters() -> None:
    # "ab" + "c" and "a" + "bc" must not collide by construction.
    assert bucket("ab", "c") != bucket("a", "bc")


def test_bucket_range_and_spread() -> None:
    values = [bucket("canary_spread", f"user-{i}") for i in range(20_000)]
    assert all(0 <= v < BUCKETS for v in values)
    for percent in (1, 5, 20, 50, 90):
        share = sum(in_canary(v, percent) for v in values) / len(values) * 100
        assert abs(share - percent) < 1.5, (percent, share)


def test_bucket_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        bucket("d", 42)  # type: ignore[arg-type]


def test_in_canary_edges() -> None:
    for b in (0, 1, 9999):
        assert not in_canary(b, 0)
        assert in_canary(b, 100)
    assert in_canary(999, 10) and not in_canary(1000, 10)
    assert in_canary(9999, 250)  # clamped to 100
    assert not in_canary(0, -5)  # clamped to 0


def test_monotonic_in_percent() -> None:
    """Raising the percentage never moves a key back from canary to stable."""
    rng = random.Random(7)
    salts = ["canary_1", "canary_x", "d"] + [f"canary_{rng.getrandbits(64):x}" for _ in range(5)]
    keys = [f"user-{i}" for i in range(300)] + ["", "é", "a\x1fb"]
    for salt in salts:
        for key in keys:
            b = bucket(salt, key)
            lanes = [in_canary(b, p) for p in range(101)]
            first = lanes.index(True)  # at 100% everything is canary
            assert lanes == [False] * first + [True] * (101 - first)


def test_monotonic_through_route_locally() -> None:
    keys = [f"user-{i}" for i in range(500)]
    canary: set = set()
    for percent in range(0, 101, 5):
        d = deployment(percent)
        now = {k for k in keys if route_locally(d, "jobs", k)["lane"] == "canary"}
        assert canary <= now, f"keys went back to stable at {percent}%: {sorted(canary - now)[:5]}"
        canary = now
    assert canary == set(keys)


# --------------------------------------------------------- physical targets


@pytest.mark.parametrize(
    "strategy, lane, expected",
    [
        ("split_queue", "stable", ("q", None)),
        ("split_queue", "canary", ("q:canary", None)),
        ("stream_group", "stable", ("q", "q:stable")),
        ("stream_group", "canary", ("q", "q:canary")),
        ("hash_ring", "stable", ("q:stable", None)),
        ("hash_ring", "canary", ("q:canary", None)),
    ],
)
def test_lane_target(strategy: str, lane: str, expected: tuple) -> None:
    assert lane_target("q", lane, strategy) == expected


def test_lane_target_rejects_unknowns() -> None:
    with pytest.raises(ValueError):
        lane_target("q", "blue")
    with pytest.raises(ValueError):
        lane_target("q", "stable", "round_robin")


# ------------------------------------------------------------ route_locally


def test_route_keyed_shape() -> None:
    d = deployment(20, id="canary_1")
    assert route_locally(d, "jobs", "user-42") == {
        "deployment_id": "canary_1",
        "lane": "stable",  # bucket 9810 >= 2000
        "queue": "jobs",
        "consumer_group": None,
        "percentage": 20,
        "sticky": True,
        "bucket": 9810,
    }
    d = deployment(99, id="canary_1")
    assert route_locally(d, "jobs", "user-42")["queue"] == "jobs:canary"


def test_route_without_deployment() -> None:
    expected = {
        "deployment_id": None,
        "lane": "stable",
        "queue": "jobs",
        "consumer_group": None,
        "percentage": 0,
        "sticky": False,
        "bucket": None,
    }
    assert route_locally(None, "jobs", "user-1") == expected
    for status in ("completed", "failed"):
        assert route_locally(deployment(50, status=status), "jobs", "user-1") == expected
    for status in ("paused", "promoting", "rolling_back"):
        assert route_locally(deployment(50, status=status), "jobs", "user-1")["deployment_id"] == "canary_1"


def test_route_unkeyed_uses_random_bucket() -> None:
    d = deployment(30)
    low = route_locally(d, "jobs", None, random_bucket=2999)
    high = route_locally(d, "jobs", None, random_bucket=3000)
    assert (low["lane"], low["sticky"], low["bucket"]) == ("canary", False, None)
    assert (high["lane"], high["sticky"], high["bucket"]) == ("stable", False, None)
    # Drawn when not given: about 30% canary.
    share = sum(route_locally(d, "jobs")["lane"] == "canary" for _ in range(4000)) / 4000
    assert 0.25 < share < 0.35


def test_route_non_sticky_ignores_key() -> None:
    d = deployment(50, sticky=False)
    for rb in (0, 4999, 5000, 9999):
        r = route_locally(d, "jobs", "user-42", random_bucket=rb)
        assert r["sticky"] is False and r["bucket"] is None
        assert r["lane"] == ("canary" if rb < 5000 else "stable")


def test_hash_ring_is_keyed_even_without_sticky() -> None:
    d = deployment(50, strategy="hash_ring", sticky=False)
    r = route_locally(d, "jobs", "user-42", random_bucket=0)
    assert r["sticky"] is True and r["bucket"] == 9810
    assert (r["lane"], r["queue"]) == ("stable", "jobs:stable")
    # ... but without a key it is random like any other.
    r = route_locally(d, "jobs", None, random_bucket=0)
    assert (r["lane"], r["queue"], r["sticky"]) == ("canary", "jobs:canary", False)


def test_stream_group_target() -> None:
    d = deployment(100, strategy="stream_group")
    r = route_locally(d, "jobs", "k")
    assert (r["lane"], r["queue"], r["consumer_group"]) == ("canary", "jobs", "jobs:canary")


def test_route_rejects_bad_arguments() -> None:
    d = deployment(10)
    with pytest.raises(ValueError):
        route_locally(d, "jobs", None, random_bucket=10_000)
    with pytest.raises(ValueError):
        route_locally(d, "jobs", None, random_bucket=-1)
    with pytest.raises(TypeError):
        route_locally(d, "jobs", None, random_bucket=True)
    with pytest.raises(TypeError):
        route_locally(d, "jobs", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="is on queue"):
        route_locally(d, "other", "k")


def test_exports() -> None:
    for name in ("bucket", "route_locally", "lane_target", "in_canary", "LocalRouter", "BUCKETS"):
        assert name in serin_client.__all__
        assert getattr(serin_client, name) is getattr(serin_client.routing, name)


# --------------------------------------------------------------- LocalRouter


class FakeClient:
    def __init__(self, d: Optional[Dict[str, Any]]) -> None:
        self.d = d
        self.calls: List[str] = []
        self.fail = False

    def route(self, queue: str, key: Optional[str] = None, *, tenant_id: Optional[str] = None) -> Dict[str, Any]:
        self.calls.append("route")
        if self.fail:
            raise SerinConnectionError(message="down")
        return {"deployment_id": self.d["id"] if self.d else None}

    def get_deployment(self, deployment_id: str) -> Dict[str, Any]:
        self.calls.append("get")
        assert self.d is not None and deployment_id == self.d["id"]
        return dict(self.d)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_local_router_routes_from_cache_without_requests() -> None:
    client = FakeClient(deployment(0))
    router = LocalRouter(client, "jobs", refresh_interval=None)
    assert router.route("user-1")["lane"] == "stable"  # the first route fetches
    client.d = deployment(100)  # the percentage moved on the server
    for _ in range(200):
        assert router.route("user-1")["lane"] == "stable"  # ... but the cache holds
    assert client.calls == ["route", "get"]
    assert not router.running  # no thread with refresh_interval=None

    assert router.refresh() is not None  # an explicit refresh picks it up
    assert router.route("user-1")["lane"] == "canary"
    assert router.refreshes == 2 and client.calls == ["route", "get"] * 2

    client.d = None  # deployment gone
    assert router.refresh() is None
    assert router.route("user-1")["deployment_id"] is None
    assert client.calls[-1] == "route"


def test_local_router_default_interval_is_15s() -> None:
    router = LocalRouter(FakeClient(None), "jobs")
    assert router.refresh_interval == DEFAULT_REFRESH_INTERVAL == 15.0
    assert not router.running  # nothing happens before start() or the first route()
    with pytest.raises(ValueError):
        LocalRouter(FakeClient(None), "jobs", refresh_interval=0)
    with pytest.raises(ValueError):
        LocalRouter(FakeClient(None), "jobs", refresh_interval=-1)


def test_local_router_refreshes_in_background() -> None:
    now = [100.0]
    client = FakeClient(deployment(0))
    with LocalRouter(client, "jobs", refresh_interval=0.02, clock=lambda: now[0]) as router:
        assert router.running and router.refreshes == 1 and router.last_refresh == 100.0
        assert router.route("user-1")["lane"] == "stable"
        thread = router._thread
        assert thread is not None and thread.daemon

        now[0] = 200.0
        client.d = deployment(100)
        wait_for(lambda: router.route("user-1")["lane"] == "canary")
        wait_for(lambda: router.refreshes >= 4)
        assert router.last_refresh == 200.0
    assert not router.running and not thread.is_alive()
    calls = len(client.calls)
    time.sleep(0.1)
    assert len(client.calls) == calls  # closed: no more refreshes
    assert router.route("user-1")["lane"] == "canary"  # still routes from the last copy
    with pytest.raises(RuntimeError):
        router.start()


def test_local_router_keeps_last_deployment_when_refresh_fails() -> None:
    client = FakeClient(deployment(100))
    router = LocalRouter(client, "jobs", refresh_interval=0.02).start()
    try:
        assert router.route("k")["lane"] == "canary"
        client.fail = True
        wait_for(lambda: isinstance(router.last_error, SerinConnectionError))
        refreshes = router.refreshes
        fails = client.calls.count("route")
        wait_for(lambda: client.calls.count("route") >= fails + 3)  # it keeps trying
        assert router.route("k")["lane"] == "canary"  # from the last good deployment
        assert router.refreshes == refreshes
        assert router.running
        # An explicit refresh that fails does not raise either: the copy is good.
        assert router.refresh() == deployment(100)

        client.fail = False
        wait_for(lambda: router.last_error is None and router.refreshes > refreshes)
    finally:
        router.close()


def test_local_router_first_fetch_error_raises() -> None:
    client = FakeClient(deployment(10))
    client.fail = True
    router = LocalRouter(client, "jobs")
    with pytest.raises(SerinConnectionError):
        router.route("k")
    assert not router.running  # no thread for a router that never had a deployment
    with pytest.raises(SerinConnectionError):
        with LocalRouter(client, "jobs"):
            pass
    client.fail = False
    assert router.route("k")["deployment_id"] == "canary_1"  # the next route tries again
    router.close()


def test_local_router_thread_ends_when_router_is_dropped() -> None:
    client = FakeClient(deployment(10))
    router = LocalRouter(client, "jobs", refresh_interval=0.02).start()
    thread = router._thread
    assert thread is not None and thread.is_alive()
    del router
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_local_router_routes_during_refreshes_from_threads() -> None:
    client = FakeClient(deployment(50))
    errors: List[BaseException] = []
    with LocalRouter(client, "jobs", refresh_interval=0.001) as router:
        def produce() -> None:
            try:
                for i in range(2000):
                    assert router.route(f"user-{i}")["deployment_id"] == "canary_1"
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=produce) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert router.refreshes > 1
