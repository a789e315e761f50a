"""The Redis queue example end to end (markers: ``redis``, ``server``).

A 20% sticky canary on a fresh queue; ``examples/redis-queue/producer.py``
enqueues 500 jobs for users ``user-0..user-499`` with local routing, then 500
more for the same users with ``--remote`` (so each user has two jobs, routed
once by the client and once by the server); a stable worker and a canary worker
that fails 30% of its jobs drain the lists and report through heartbeats.

Needs Redis at ``$REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) and
redis-py; without them the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from serin_client import SerinClient, route_locally

pytestmark = [pytest.mark.redis, pytest.mark.server]

Namer = Callable[[str], str]

PYTHON_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = PYTHON_ROOT.parents[1]
EXAMPLE = REPO_ROOT / "examples" / "redis-queue"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
JOBS = 500
PERCENT = 20
CANARY_FAIL_RATE = 0.3
TIMEOUT = 120


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def redis_prefix() -> Iterator[Tuple[Any, str]]:
    """A live Redis connection and a key prefix of this run; its keys are deleted after."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    try:
        import redis
    except ImportError:
        _unavailable("redis-py is not installed (pip install redis)")
    conn = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        conn.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis is not reachable at {url}: {exc}")
    prefix = f"serin-pytest-{uuid.uuid4().hex[:10]}:"
    try:
        yield conn, prefix
    finally:
        keys = list(conn.scan_iter(match=prefix + "*"))
        if keys:
            conn.delete(*keys)
        conn.close()


def _env(client: SerinClient) -> Dict[str, str]:
    env = dict(os.environ)
    env["SERIN_URL"] = client.base_url
    env["SERIN_API_KEY"] = client.api_key or ""
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    # The client under test, not whatever version is installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def _last_json_line(out: str, what: str) -> Dict[str, Any]:
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, f"{what} printed nothing"
    return json.loads(lines[-1])


def _produce(env: Dict[str, str], queue: str, prefix: str, *extra: str) -> Dict[str, Any]:
    command = [sys.executable, str(EXAMPLE / "producer.py"), "--queue", queue, "--prefix", prefix,
               "--jobs", str(JOBS), "--json", *extra]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"producer failed ({done.returncode}):\n{done.stderr}"
    return _last_json_line(done.stdout, "producer")


def _run_workers(env: Dict[str, str], queue: str, prefix: str, tag: str) -> Dict[str, Dict[str, Any]]:
    common = ["--queue", queue, "--prefix", prefix, "--latency-ms", "1", "--idle-exit", "1.5",
              "--heartbeat", "0.5", "--json"]
    specs = {
        "stable": ["--lane", "stable", "--version", "1.0.0", "--id", f"{tag}-stable", "--seed", "1"],
        "canary": ["--lane", "canary", "--version", "1.1.0", "--id", f"{tag}-canary", "--seed", "2",
                   "--fail-rate", str(CANARY_FAIL_RATE)],
    }
    procs = {
        lane: subprocess.Popen([sys.executable, str(EXAMPLE / "worker.py"), *args, *common], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for lane, args in specs.items()
    }
    results: Dict[str, Dict[str, Any]] = {}
    try:
        for lane, proc in procs.items():
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, f"{lane} worker failed ({proc.returncode}):\n{err}"
            results[lane] = _last_json_line(out, f"{lane} worker")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    return results


def test_redis_queue_example(
    redis_prefix: Tuple[Any, str], client: SerinClient, unique_name: Namer
) -> None:
    red, prefix = redis_prefix
    queue = unique_name("redisq")
    deployment = client.create_deployment(
        queue, "1.0.0", "1.1.0", percentage=PERCENT, sticky_routing=True, routing_strategy="split_queue"
    )
    env = _env(client)

    # Round 1: local routing, jobs 0..499 for user-0..user-499. Round 2: the same
    # users again (jobs 500..999), each job routed by the server.
    local = _produce(env, queue, prefix)
    remote = _produce(env, queue, prefix, "--remote", "--start", str(JOBS), "--users", str(JOBS))
    assert local["mode"] == "local" and local["refreshes"] >= 1
    assert remote["mode"] == "remote"
    assert local["deployments"] == remote["deployments"] == [deployment["id"]]
    assert red.llen(prefix + queue) + red.llen(prefix + queue + ":canary") == 2 * JOBS

    workers = _run_workers(env, queue, prefix, unique_name("w"))

    # Drained, and every job processed exactly once across the two lanes.
    assert red.llen(prefix + queue) == 0
    assert red.llen(prefix + queue + ":canary") == 0
    processed: Dict[str, str] = {}
    user_lanes: Dict[str, set] = defaultdict(set)
    failures = {"stable": 0, "canary": 0}
    for lane, summary in workers.items():
        assert summary["lane"] == lane
        assert summary["unreported_results"] == 0 and summary["heartbeat_errors"] == 0
        for job_id, user, ok in summary["jobs"]:
            assert job_id not in processed, f"{job_id} processed twice"
            processed[job_id] = lane
            user_lanes[user].add(lane)
            failures[lane] += not ok
    expected_ids = {f"job-{i}" for i in range(2 * JOBS)}
    assert set(processed) == expected_ids, (
        f"missing {sorted(expected_ids - set(processed))[:5]}, extra {sorted(set(processed) - expected_ids)[:5]}"
    )

    # Each job was processed on the lane the producer routed it to.
    placements = {**local["placements"], **remote["placements"]}
    assert placements == processed

    # The same user always went to the same lane, the one the hash gives.
    fetched = client.get_deployment(deployment["id"])
    assert set(user_lanes) == {f"user-{i}" for i in range(JOBS)}
    for user, lanes in user_lanes.items():
        assert lanes == {route_locally(fetched, queue, user)["lane"]}, user

    counts = {lane: workers[lane]["processed"] for lane in ("stable", "canary")}
    share = 100.0 * counts["canary"] / (2 * JOBS)
    assert abs(share - PERCENT) <= 6, f"canary share {share:.1f}%"
    assert local["lanes"] == remote["lanes"] == {"stable": counts["stable"] // 2, "canary": counts["canary"] // 2}

    # Serin saw every result, on the right lane.
    metrics = client.deployment_metrics(deployment["id"])
    stable, canary = metrics["stable"], metrics["canary"]
    assert canary["job_count"] == counts["canary"]
    assert stable["job_count"] == counts["stable"]
    assert canary["error_count"] == failures["canary"]
    assert stable["error_count"] == failures["stable"] == 0
    assert (stable["version"], canary["version"]) == ("1.0.0", "1.1.0")
    assert stable["worker_count"] == 1 and canary["worker_count"] == 1
    assert canary["error_rate"] == pytest.approx(100.0 * failures["canary"] / counts["canary"], abs=0.01)
    assert 15.0 < canary["error_rate"] < 45.0  # about CANARY_FAIL_RATE
    assert canary["error_rate"] > (stable["error_rate"] or 0.0) + 10.0

    health = client.deployment_health(deployment["id"])
    assert health["overall_status"] == "failing", health

    print(
        f"\nredis-queue: {2 * JOBS} jobs, canary share {share:.1f}% "
        f"({counts['canary']} canary / {counts['stable']} stable); error rate canary "
        f"{canary['error_rate']}% vs stable {stable['error_rate']}%; "
        f"p95 canary {canary['p95_latency']} ms, stable {stable['p95_latency']} ms; "
        f"health {health['overall_status']}"
    )
