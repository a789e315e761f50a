"""Canary deployments, routing and workers against the real server (marker: ``server``)."""

from __future__ import annotations

import time
from typing import Callable, List, Tuple

import pytest

from serin_client import (
    ActionAnswer,
    Deployment,
    LocalRouter,
    NotFoundError,
    PercentageAnswer,
    RolloutStatus,
    SerinClient,
    ValidationError,
    WatchTimeoutError,
    route_locally,
)

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


def test_typed_deployment_models(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("typed")
    d = client.create_deployment(queue, "1.0.0", "1.1.0", percentage=15, metadata={"team": "a"})
    assert isinstance(d, Deployment)
    assert (d.queue_name, d.stable_version, d.canary_version) == (queue, "1.0.0", "1.1.0")
    assert (d.status, d.current_percent, d.target_percent) == ("active", 15, 15)
    assert d.metadata == {"team": "a"} and d.rollout is None and not d.is_final
    assert d.start_time.tzinfo is not None and d.completed_at is None

    fetched = client.get_deployment(d)
    assert fetched.id == d.id and fetched["queue_name"] == queue
    assert [x.id for x in client.list_deployments(queue_name=queue)] == [d.id]
    assert d.id in {x.id for x in client.iter_deployments(status="active")}

    answer = client.set_percentage(d, 40)
    assert isinstance(answer, PercentageAnswer) and answer.percentage == 40 and answer.success
    after = client.get_deployment(d.id)
    assert after.current_percent == 40 and after.revision > d.revision

    rolled = client.rollback(d, "typed test")
    assert isinstance(rolled, ActionAnswer) and rolled.reason == "typed test"
    final = client.get_deployment(d)
    assert final.status == "failed" and final.is_final and final.completed_at is not None
    assert final.status_reason and "typed test" in final.status_reason
    assert client.watch(final, timeout=5) == final  # already over: returns at once
    assert [x.id for x in client.list_deployments(status="failed", queue_name=queue)] == [d.id]


STEPS = [
    {"set_weight": 10},
    {"pause": {"duration": "1s"}},
    {"set_weight": 50},
    {"pause": {}},  # until continued
    {"set_weight": 100},
]


def wait_for_status(client: SerinClient, deployment_id: str, check: Callable[[RolloutStatus], bool],
                    timeout: float = 20.0) -> RolloutStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = client.rollout_status(deployment_id)
        if check(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def test_rollout_start_status_continue_and_watch(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("rollout")
    d = client.start_rollout(queue, "1.0.0", "1.1.0", STEPS, auto_promotion=True, min_duration="0s")
    assert d.rollout is not None and d.rollout.total_steps == 5 and d.rollout.step == 0
    assert d.config["auto_promotion"] is True

    held = wait_for_status(client, d.id, lambda s: s.waiting_for is not None)
    assert held.current_percent == 50 and held.rollout.step == 3
    assert [s.state for s in held.steps] == ["done", "done", "done", "running", "pending"]
    assert held.current_step is not None and held.current_step.description == "pause until continued"

    # Not over while it waits for a person.
    with pytest.raises(WatchTimeoutError) as info:
        client.watch(d, timeout=1.0, poll_interval=0.2)
    assert info.value.deployment is not None and info.value.deployment.status == "active"

    assert client.continue_rollout(d).rollout.step >= 4
    seen: List[Tuple[int, str]] = []
    final = client.watch(d, timeout=30, poll_interval=0.2,
                         on_update=lambda x: seen.append((x.current_percent, x.status)))
    assert final.status == "completed" and final.current_percent == 100
    assert final.rollout is not None and final.rollout.finished
    assert seen[-1] == (100, "completed")
    done = client.rollout_status(d)
    assert done.is_final and all(s.state == "done" for s in done.steps)


def test_rollout_abort_ends_the_watch(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("abort")
    d = client.start_rollout(queue, "1.0.0", "1.1.0", {"steps": [{"set_weight": 20}, {"pause": {}}]})
    wait_for_status(client, d.id, lambda s: s.waiting_for is not None)
    assert client.abort(d).success
    final = client.watch(d, timeout=30, poll_interval=0.2)
    assert final.status == "failed" and final.current_percent == 0
    assert final.status_reason and "aborted" in final.status_reason


def test_rollout_errors(client: SerinClient, unique_name: Namer) -> None:
    plain = client.create_deployment(unique_name("plain"), "1.0.0", "1.1.0", percentage=5)
    with pytest.raises(ValidationError):
        client.rollout_status(plain)  # no plan
    client.rollback(plain)
    with pytest.raises(ValidationError):
        client.start_rollout(unique_name("bad"), "1.0.0", "1.1.0", [{"set_weight": 250}])
    with pytest.raises(NotFoundError):
        client.watch("canary_00000000-0000-0000-0000-000000000000", timeout=5)


def test_local_router_follows_the_server(client: SerinClient, unique_name: Namer) -> None:
    queue = unique_name("router")
    d = client.create_deployment(queue, "1.0.0", "1.1.0", percentage=0, sticky_routing=True)
    with LocalRouter(client, queue, refresh_interval=0.2) as router:
        assert router.running
        assert all(router.route(k)["lane"] == "stable" for k in KEYS)
        client.set_percentage(d, 100)
        deadline = time.monotonic() + 10
        while router.route("user-1")["lane"] != "canary":
            assert time.monotonic() < deadline, "the router never saw the new percentage"
            time.sleep(0.05)
        client.set_percentage(d, 30)
        deadline = time.monotonic() + 10
        while router.route("user-1")["percentage"] != 30:
            assert time.monotonic() < deadline, "the router never saw the new percentage"
            time.sleep(0.05)
        for key in KEYS:
            assert router.route(key) == client.route(queue, key)
        assert router.refreshes >= 2 and router.last_error is None
    assert not router.running
    client.rollback(d)
