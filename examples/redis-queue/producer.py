#!/usr/bin/env python3
"""Enqueue jobs on Redis lists, each on the lane Serin picks for it.

Every job is ``{"id", "user", "payload"}`` JSON and is keyed by its user, so a
user's jobs always land on the same lane while the canary percentage holds.
By default the lane is computed locally (``serin_client.LocalRouter``: the
deployment is refreshed in a background thread every ``--refresh`` seconds
and the hash is evaluated here, with no request per job); ``--remote`` asks the server (``GET /api/v1/canary/route``)
for every job instead. Both give the same answer for keyed jobs.

The Redis key of a physical queue is ``<prefix><physical queue>``, e.g.
``demo:emails`` and ``demo:emails:canary`` with ``--prefix demo:``.

    SERIN_URL=http://127.0.0.1:8080 SERIN_API_KEY=srn_... \\
        python3 producer.py --queue emails --jobs 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from typing import Any, Callable, Dict, List, Optional

import redis

from serin_client import LocalRouter, SerinClient

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "serin-example:"


def make_client() -> SerinClient:
    return SerinClient(
        os.environ.get("SERIN_URL", "http://127.0.0.1:8080"),
        api_key=os.environ.get("SERIN_API_KEY") or None,
        timeout=10.0,
    )


def make_job(index: int, users: int, payload_bytes: int) -> Dict[str, Any]:
    user = f"user-{index % users}"
    return {"id": f"job-{index}", "user": user, "payload": {"n": index, "data": "x" * payload_bytes}}


def produce(
    client: SerinClient,
    red: redis.Redis,
    queue: str,
    jobs: int,
    *,
    prefix: str = DEFAULT_PREFIX,
    start: int = 0,
    users: Optional[int] = None,
    remote: bool = False,
    refresh: float = 1.0,
    payload_bytes: int = 16,
    batch: int = 100,
    log: Callable[[str], None] = lambda line: None,
) -> Dict[str, Any]:
    """Route and LPUSH ``jobs`` jobs (``job-<start>`` ...); returns a summary dict."""
    users = users or jobs
    if users < 1:
        raise ValueError("users must be at least 1")
    router = None if remote else LocalRouter(client, queue, refresh_interval=refresh)

    lanes: Counter = Counter()
    physical: Counter = Counter()
    placements: Dict[str, str] = {}  # job id -> lane
    deployments = set()
    pending: Dict[str, List[bytes]] = {}
    started = time.monotonic()

    def flush() -> None:
        if not pending:
            return
        pipe = red.pipeline(transaction=False)
        for key, items in pending.items():
            pipe.lpush(key, *items)
        pipe.execute()
        pending.clear()

    for index in range(start, start + jobs):
        job = make_job(index, users, payload_bytes)
        decision = client.route(queue, job["user"]) if remote else router.route(job["user"])  # type: ignore[union-attr]
        if decision.get("consumer_group"):
            raise ValueError(
                f"queue {queue!r} uses a consumer group ({decision['consumer_group']}); "
                "this example uses Redis lists and supports split_queue and hash_ring only"
            )
        deployments.add(decision["deployment_id"])
        lanes[decision["lane"]] += 1
        physical[decision["queue"]] += 1
        placements[job["id"]] = decision["lane"]
        pending.setdefault(prefix + decision["queue"], []).append(
            json.dumps(job, separators=(",", ":")).encode("utf-8")
        )
        if sum(len(v) for v in pending.values()) >= batch:
            flush()
    flush()

    elapsed = time.monotonic() - started
    if router is not None:
        router.close()
    summary = {
        "queue": queue,
        "mode": "remote" if remote else "local",
        "jobs": jobs,
        "lanes": {"stable": lanes["stable"], "canary": lanes["canary"]},
        "physical_queues": dict(physical),
        "deployments": sorted(d for d in deployments if d),
        "refreshes": router.refreshes if router else None,
        "seconds": round(elapsed, 3),
        "placements": placements,
    }
    log(
        f"enqueued {jobs} jobs on {queue!r} in {elapsed:.2f}s ({summary['mode']} routing): "
        f"stable {lanes['stable']}, canary {lanes['canary']} "
        f"({100.0 * lanes['canary'] / max(jobs, 1):.1f}% canary)"
    )
    for name, count in sorted(physical.items()):
        log(f"  {prefix}{name}: {count}")
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", default="jobs", help="logical queue name (default: jobs)")
    parser.add_argument("--jobs", type=int, default=1000, help="how many jobs (default: 1000)")
    parser.add_argument("--start", type=int, default=0, help="first job number (ids job-<n>)")
    parser.add_argument("--users", type=int, default=None,
                        help="distinct users; job n belongs to user-(n %% users) (default: --jobs)")
    parser.add_argument("--remote", action="store_true", help="ask the server for every job")
    parser.add_argument("--refresh", type=float, default=1.0,
                        help="seconds between deployment refreshes with local routing (default: 1)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"Redis key prefix (default: {DEFAULT_PREFIX})")
    parser.add_argument("--payload-bytes", type=int, default=16, help="filler per job (default: 16)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line on stdout")
    args = parser.parse_args(argv)
    if args.jobs < 0:
        parser.error("--jobs must not be negative")

    red = redis.Redis.from_url(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    try:
        summary = produce(
            make_client(),
            red,
            args.queue,
            args.jobs,
            prefix=args.prefix,
            start=args.start,
            users=args.users,
            remote=args.remote,
            refresh=args.refresh,
            payload_bytes=args.payload_bytes,
            log=lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True),
        )
    except ValueError as exc:
        print(f"producer: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
