#!/usr/bin/env python3
"""A worker of one lane: pops jobs from its lane's Redis list and reports to Serin.

It registers with Serin as a worker of ``--lane`` running ``--version`` on the
logical ``--queue``, then BRPOPs from the lane's physical queue (the same
naming rule the producer routes by: with ``split_queue`` stable reads ``Q`` and
canary ``Q:canary``; with ``hash_ring`` ``Q:stable`` / ``Q:canary``). Each job
"runs" for ``--latency-ms`` and fails with probability ``--fail-rate``; whether
a given job fails depends only on ``--seed`` and the job id, so runs repeat.

About every ``--heartbeat`` seconds, and once more at exit, it sends a heartbeat
with its metrics and the results of the jobs finished since the last one; Serin
turns those into observations of the lane, which the deployment's metrics and
health compare. A heartbeat that fails is retried with the next one, so no
result is lost while the server is briefly away.

It stops after ``--max-jobs`` jobs, when its queue has been empty for
``--idle-exit`` seconds, or on SIGINT/SIGTERM.

    SERIN_URL=http://127.0.0.1:8080 SERIN_API_KEY=srn_... \\
        python3 worker.py --lane canary --version 1.1.0 --queue emails --fail-rate 0.3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Union

import redis

from serin_client import NotFoundError, SerinClient, SerinError, lane_target

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "serin-example:"
MAX_RESULTS_PER_BEAT = 10_000  # the server's limit


def make_client() -> SerinClient:
    return SerinClient(
        os.environ.get("SERIN_URL", "http://127.0.0.1:8080"),
        api_key=os.environ.get("SERIN_API_KEY") or None,
        timeout=10.0,
    )


def resolve_strategy(client: SerinClient, queue: str, wanted: str) -> str:
    """The routing strategy of the queue's live deployment (``auto``), or ``wanted``."""
    if wanted != "auto":
        return wanted
    deployment_id = client.route(queue).get("deployment_id")
    if not deployment_id:
        return "split_queue"  # nothing live: everything is stable on Q either way
    return client.get_deployment(deployment_id).get("config", {}).get("routing_strategy", "split_queue")


def rss_mb() -> float:
    """Resident memory of this process in MB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Worker:
    def __init__(self, args: argparse.Namespace, client: SerinClient, red: redis.Redis) -> None:
        self.args = args
        self.client = client
        self.red = red
        self.worker_id: str = args.id or f"{args.lane}-{args.version}-{socket.gethostname()}-{os.getpid()}"
        self.strategy = resolve_strategy(client, args.queue, args.strategy)
        physical, group = lane_target(args.queue, args.lane, self.strategy)
        if group is not None:
            raise ValueError(
                f"queue {args.queue!r} uses {self.strategy} (consumer group {group}); "
                "this example uses Redis lists and supports split_queue and hash_ring only"
            )
        self.physical_queue = physical
        self.redis_key = args.prefix + physical

        self.processed = self.succeeded = self.failed = 0
        self.total_ms = 0.0
        self.last_job_at: Optional[datetime] = None
        self.pending: List[Dict[str, Any]] = []  # results not yet accepted by the server
        self.jobs: List[List[Any]] = []  # [id, user, success] in processing order
        self.heartbeats = self.heartbeat_errors = 0
        self.stopping = False
        self._cpu_mark = (time.monotonic(), time.process_time())

    # ------------------------------------------------------------ serin

    def register(self) -> None:
        self.client.register_worker(
            self.worker_id,
            self.args.version,
            self.args.lane,
            [self.args.queue],
            metadata={
                "example": "redis-queue",
                "physical_queue": self.physical_queue,
                "routing_strategy": self.strategy,
                "pid": os.getpid(),
            },
        )

    def metrics(self) -> Dict[str, Any]:
        now, cpu = time.monotonic(), time.process_time()
        wall = now - self._cpu_mark[0]
        cpu_pct = 100.0 * (cpu - self._cpu_mark[1]) / wall if wall > 0 else 0.0
        self._cpu_mark = (now, cpu)
        return {
            "jobs_processed": self.processed,
            "jobs_succeeded": self.succeeded,
            "jobs_failed": self.failed,
            "avg_processing_time": round(self.total_ms / self.processed, 3) if self.processed else 0.0,
            "memory_usage_mb": round(rss_mb(), 1),
            "cpu_usage_percent": round(max(cpu_pct, 0.0), 1),
            "last_job_at": self.last_job_at,
        }

    def beat(self) -> bool:
        """Send metrics and the pending results (in chunks the server accepts)."""
        while True:
            chunk = self.pending[:MAX_RESULTS_PER_BEAT]
            try:
                try:
                    self.client.heartbeat(self.worker_id, self.metrics(), chunk)
                except NotFoundError:
                    # The server forgot us (e.g. a fresh database): register again.
                    self.register()
                    self.client.heartbeat(self.worker_id, self.metrics(), chunk)
            except SerinError as exc:
                self.heartbeat_errors += 1
                self.log(f"heartbeat failed ({exc}); {len(self.pending)} results kept for the next one")
                return False
            self.heartbeats += 1
            del self.pending[: len(chunk)]
            if not self.pending:
                return True

    # ------------------------------------------------------------- jobs

    def process(self, raw: Union[bytes, str]) -> None:
        started = time.perf_counter()
        try:
            job = json.loads(raw)
            job_id, user = str(job["id"]), job.get("user")
        except (ValueError, KeyError, TypeError):
            job_id, user, ok = None, None, False  # a malformed job is a failed job
        else:
            if self.args.latency_ms > 0:
                time.sleep(self.args.latency_ms / 1000.0)
            # The outcome depends on the seed and the job id only, not on timing or order.
            ok = random.Random(f"{self.args.seed}:{job_id}").random() >= self.args.fail_rate
        duration_ms = (time.perf_counter() - started) * 1000.0
        finished = datetime.now(timezone.utc)

        self.processed += 1
        self.total_ms += duration_ms
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
        self.last_job_at = finished
        self.jobs.append([job_id, user, ok])
        self.pending.append({
            "queue": self.args.queue,  # the logical queue: that is where the deployment lives
            "success": ok,
            "duration_ms": round(duration_ms, 3),
            "timestamp": finished,
        })

    def run(self) -> Dict[str, Any]:
        """Consume until told to stop (call :meth:`register` first)."""
        args = self.args
        self.log(
            f"worker {self.worker_id} ({args.lane} {args.version}) reading {self.redis_key} "
            f"[{self.strategy}], fail rate {args.fail_rate}, latency {args.latency_ms} ms"
        )
        next_beat = time.monotonic() + args.heartbeat
        last_activity = time.monotonic()
        try:
            while not self.stopping:
                if args.max_jobs and self.processed >= args.max_jobs:
                    break
                now = time.monotonic()
                wait = max(0.05, min(next_beat - now, 0.5))
                item = self.red.brpop([self.redis_key], timeout=wait)
                now = time.monotonic()
                if item is not None:
                    self.process(item[1])
                    last_activity = now
                elif args.idle_exit and now - last_activity >= args.idle_exit:
                    self.log(f"queue empty for {args.idle_exit:g}s, stopping")
                    break
                if now >= next_beat:
                    self.beat()
                    next_beat = now + args.heartbeat
        except KeyboardInterrupt:
            pass
        finally:
            # The last beat reports whatever is still pending; try a few times.
            for attempt in range(3):
                if self.beat():
                    break
                time.sleep(0.5 * (attempt + 1))
        summary = self.summary()
        self.log(
            f"worker {self.worker_id}: {self.processed} jobs, {self.succeeded} ok, {self.failed} failed"
            + (f", {len(self.pending)} results NOT reported" if self.pending else "")
        )
        return summary

    def summary(self) -> Dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "lane": self.args.lane,
            "version": self.args.version,
            "queue": self.args.queue,
            "physical_queue": self.physical_queue,
            "redis_key": self.redis_key,
            "routing_strategy": self.strategy,
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "error_rate": round(100.0 * self.failed / self.processed, 2) if self.processed else None,
            "heartbeats": self.heartbeats,
            "heartbeat_errors": self.heartbeat_errors,
            "unreported_results": len(self.pending),
            "jobs": self.jobs,
        }

    def log(self, line: str) -> None:
        print(line, file=sys.stderr if self.args.json else sys.stdout, flush=True)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lane", required=True, choices=("stable", "canary"))
    parser.add_argument("--version", required=True, help="the version this worker runs")
    parser.add_argument("--queue", default="jobs", help="logical queue name (default: jobs)")
    parser.add_argument("--id", default=None, help="worker id (default: <lane>-<version>-<host>-<pid>)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="probability a job fails (default: 0)")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="time per job, ms (default: 10)")
    parser.add_argument("--seed", default="0", help="seed of the failure draws (default: 0)")
    parser.add_argument("--max-jobs", type=int, default=0, help="stop after this many jobs (0: no limit)")
    parser.add_argument("--idle-exit", type=float, default=0.0,
                        help="stop when the queue stays empty this many seconds (0: never)")
    parser.add_argument("--heartbeat", type=float, default=0.5, help="seconds between heartbeats (default: 0.5)")
    parser.add_argument("--strategy", default="auto", choices=("auto", "split_queue", "hash_ring"),
                        help="physical queue naming; auto reads the live deployment (default)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"Redis key prefix (default: {DEFAULT_PREFIX})")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line on stdout")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error("--fail-rate must be between 0 and 1")
    if args.latency_ms < 0 or args.max_jobs < 0 or args.idle_exit < 0 or args.heartbeat <= 0:
        parser.error("--latency-ms, --max-jobs and --idle-exit must not be negative; --heartbeat must be positive")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    red = redis.Redis.from_url(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    try:
        worker = Worker(args, make_client(), red)
        worker.register()
    except (ValueError, SerinError, redis.RedisError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: Any) -> None:
        worker.stopping = True

    signal.signal(signal.SIGTERM, stop)
    summary = worker.run()
    if args.json:
        print(json.dumps(summary, separators=(",", ":")), flush=True)
    return 0 if not summary["unreported_results"] else 1


if __name__ == "__main__":
    sys.exit(main())
