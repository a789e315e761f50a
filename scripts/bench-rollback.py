#!/usr/bin/env python3
"""Time to rollback: how long from a bad canary's first traffic until its weight
is back at 0%, with the threshold judge at its defaults (profile `default`:
required_sample_size 20, the analysis over the metrics window of 5 minutes,
checked every controller tick).

Runs the real `serin up` with its proxy, two upstream processes (stable fine;
canary failing 10% of requests, or 3x slower), and a steady load through the
proxy; the plan is seed 002's `traffic_steps: [5, 25, 50, 100]` with a 5 minute
wait. Prints one line per scenario with the median and the range over the runs.

    python3 scripts/bench-rollback.py [--bin target/release/serin] [--rps 100] [--runs 5]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM = os.path.join(ROOT, "crates", "serin", "tests", "upstream.py")
KEY = "srn_bench_admin_key_0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upstream(name, error_rate, delay_ms):
    p = subprocess.Popen(["python3", UPSTREAM, name, str(error_rate), str(delay_ms)], stdout=subprocess.PIPE, text=True)
    port = p.stdout.readline().split()[-1]
    return p, f"http://127.0.0.1:{port}"


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def run_once(binary, rps, error_rate, delay_ms):
    procs = []
    try:
        s, stable = upstream("stable", 0.0, 20)
        c, canary = upstream("canary", error_rate, delay_ms)
        procs += [s, c]
        api_port, proxy_port = free_port(), free_port()
        d = tempfile.mkdtemp()
        env = dict(os.environ, SERIN_LOG="warn", SERIN_ADMIN_TOKEN=KEY, SERIN_RATE_LIMIT="0")
        up = subprocess.Popen([binary, "up", "--listen", f"127.0.0.1:{api_port}", "--database-url", f"sqlite://{d}/serin.db",
                               "--proxy-listen", f"127.0.0.1:{proxy_port}"], env=env, stdout=subprocess.PIPE, text=True)
        procs.append(up)
        for line in up.stdout:
            if line.startswith("serin: proxy listening on"):
                break
        api = f"http://127.0.0.1:{api_port}"
        stop = threading.Event()

        def load():
            gap = 1.0 / rps
            nxt = time.monotonic()
            while not stop.is_set():
                nxt += gap
                threading.Thread(target=hit, daemon=True).start()
                time.sleep(max(0.0, nxt - time.monotonic()))

        def hit():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{proxy_port}/", timeout=5).read()
            except Exception:
                pass

        threading.Thread(target=load, daemon=True).start()
        steps = []
        for w in [5, 25, 50, 100]:
            steps.append({"set_weight": w})
            if w < 100:
                steps.append({"analysis": {"window": "5m"}})
        dep = call("POST", f"{api}/api/v1/canary/deployments", {
            "queue_name": "web", "stable_version": "v1", "canary_version": "v2",
            "max_duration": "1h", "upstreams": {"stable": [stable], "canary": [canary]},
            "traffic": {"affinity": None}, "rollout": {"steps": steps}})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            d = call("GET", f"{api}/api/v1/canary/deployments/{dep['id']}")
            if d["status"] != "active":
                break
            time.sleep(0.2)
        stop.set()
        events = call("GET", f"{api}/api/v1/canary/deployments/{dep['id']}/events?page_size=100")["events"]
        ts = lambda e: time.mktime(time.strptime(e["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + (e["timestamp"][20:26] or "0"))
        first = min((e for e in events if e["type"] == "percentage_updated"), key=ts)
        back = [e for e in events if e["type"] == "deployment_rolled_back"]
        if not back:
            return None, d["status"]
        if back[0]["data"].get("step") != 1:
            return None, f"rolled back at step {back[0]['data'].get('step')}, not the first analysis"
        return ts(back[0]) - ts(first), back[0]["message"]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "serin"))
    ap.add_argument("--rps", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    for label, err, delay in [("10% errors", 0.10, 20), ("3x latency", 0.0, 60)]:
        times, why = [], ""
        for _ in range(a.runs):
            t, why = run_once(a.bin, a.rps, err, delay)
            if t is not None:
                times.append(t)
        if times:
            print(f"time to rollback, {label}, {a.rps} req/s, first step 5%: median {statistics.median(times):.1f} s "
                  f"(min {min(times):.1f}, max {max(times):.1f}; {len(times)}/{a.runs} runs rolled back at the first analysis)")
        else:
            print(f"{label}: no run rolled back ({why})")


if __name__ == "__main__":
    main()
