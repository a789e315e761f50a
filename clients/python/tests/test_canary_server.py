"""Canary deployments, routing and workers against the real server (marker: ``server``)."""

from __future__ import annotations

from typing import Callable

import pytest

from serin_client import NotFoundError, SerinClient, ValidationError, route_locally

pytestmark = pytest.mark.server

Namer = Callable[[str], str]
KEYS = [f"user-{i}" for i in range(200)]


def assert_same_routes(client: SerinClient, queue: str) -> dict:
    """route_locally on the fetched deployment == the server's answer for every key."""
    answer = client.route(queue)
    deployment = client.get_deployment(answer["deployment_id"]) if answer["deployment_id"] else None
    lanes = {}
    for key in KEYS:
        remote = client.route(queue, key)
        local = route_locally(deployment, queue, key)
        assert local == remote, key
        lanes[key] = local["lane"]
    return lanes


@pytest.mark.parametrize("strategy", ["split_queue", "stream_group", "hash_ring"])
def test_local_routing_matches_server(client: SerinClient, unique_name: Namer, strategy: str) -> None:
    queue = unique_name("route")
    d = client.create_deployment(
        queue, "1.0.0", "1.1.0", percentage=35, routing_strategy=strategy, sticky_routing=True
    )
    assert d["id"].startswith("canary_")
    assert d["config"]["routing_strategy"] == strategy
    assert d["current_percent"] == 35

    before = assert_same_routes(client, queue)
    share = sum(lane == "canary" for lane in before.values()) / len(KEYS)
    assert 0.2 < share < 0.5

    # Raising the percentage only moves keys from stable to canary.
    assert client.set_percentage(d["id"], 60)["percentage"] == 60
    after = assert_same_routes(client, queue)
    assert all(after[k] == "canary" for k, lane in before.items() if lane == "canary")
    assert sum(lane == "canary" for lane in after.values()) > sum(lane == "canary" for lane in before.values())


def test_unkeyed_and_non_sticky_routes(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("loose")
    d = client.create_deployment(queue, "1.0.0", "1.1.0", percentage=50, sticky_routing=False)
    assert d["config"]["sticky_routing"] is False
    deployment = client.get_deployment(d["id"])
    lanes = set()
    for key in ("user-1", None):
        for _ in range(20):
            remote = client.route(queue, key)
            assert remote["sticky"] is False and remote["bucket"] is None
            lanes.add(remote["lane"])
            # The server drew a random bucket; the local answer with a bucket on the
            # same side of the split is identical.
            rb = 0 if remote["lane"] == "canary" else 9999
            assert route_locally(deployment, queue, key, random_bucket=rb) == remote
    assert lanes == {"stable", "canary"}  # 40 fair coin flips


def test_no_deployment_and_finished_deployments(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("none")
    assert client.route(queue, "user-1") == route_locally(None, queue, "user-1")

    d = client.create_deployment(queue, "1.0.0", "1.1.0", percentage=100)
    assert client.route(queue, "user-1")["lane"] == "canary"
    answer = client.rollback(d["id"], "bad canary")
    assert answer["success"] is True and answer["reason"] == "bad canary"
    rolled = client.get_deployment(d["id"])
    assert rolled["status"] == "failed"
    assert route_locally(rolled, queue, "user-1") == client.route(queue, "user-1")
    assert client.route(queue, "user-1")["deployment_id"] is None

    d2 = client.create_deployment(queue, "1.0.0", "1.2.0", percentage=10)
    assert client.promote(d2["id"])["success"] is True
    promoted = client.get_deployment(d2["id"])
    assert promoted["status"] == "completed"
    assert route_locally(promoted, queue, "user-1") == client.route(queue, "user-1")


def test_workers_heartbeats_feed_metrics(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("work")
    d = client.create_deployment(queue, "1.0.0", "1.1.0", percentage=20)
    stable_id, canary_id = unique_name("w-stable"), unique_name("w-canary")
    w = client.register_worker(stable_id, "1.0.0", "stable", [queue], metadata={"t": 1})
    assert w["id"] == stable_id and w["lane"] == "stable"
    client.register_worker(canary_id, "1.1.0", "canary", [queue])
    client.register_worker(canary_id, "1.1.0", "canary", [queue])  # re-register is fine

    client.heartbeat(
        stable_id,
        metrics={"jobs_processed": 40, "jobs_succeeded": 40, "jobs_failed": 0,
                 "avg_processing_time": 5.0, "memory_usage_mb": 64.0, "cpu_usage_percent": 3.0},
        job_results=[{"queue": queue, "success": True, "duration_ms": 5.0}] * 40,
    )
    client.heartbeat(
        canary_id,
        job_results=[{"queue": queue, "success": i % 2 == 0, "duration_ms": 6.0} for i in range(30)],
        status="healthy",
    )
    m = client.deployment_metrics(d["id"])
    assert (m["stable"]["job_count"], m["stable"]["error_count"]) == (40, 0)
    assert (m["canary"]["job_count"], m["canary"]["error_count"]) == (30, 15)
    assert m["canary"]["error_rate"] == pytest.approx(50.0)
    assert (m["stable"]["worker_count"], m["canary"]["worker_count"]) == (1, 1)
    assert client.deployment_health(d["id"])["overall_status"] == "failing"


def test_canary_errors(client: SerinClient, unique_name: Namer) -> None:
    with pytest.raises(NotFoundError):
        client.get_deployment("canary_00000000-0000-0000-0000-000000000000")
    with pytest.raises(ValidationError):
        client.create_deployment(unique_name("bad"), "1.0.0", "1.1.0", percentage=101)
    with pytest.raises(NotFoundError):
        client.heartbeat(unique_name("ghost"), job_results=[])
