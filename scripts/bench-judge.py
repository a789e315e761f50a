#!/usr/bin/env python3
"""The sequential judge's goals (issue 6), measured with `serin simulate`.

    python3 scripts/bench-judge.py [--runs 2000] [--seed 1] [--binary target/release/serin]

Runs every scenario of the issue with Serin's sequential judge and, on the same
traffic (same seed), with a Flagger-style fixed judge (1-minute checks of the
canary's success rate, rollback after 5 failures; at Flagger's usual 99% and at
a looser 95%), and prints a Markdown
table for docs/benchmarks.md. Each scenario: 100 req/s, 1% stable errors,
lognormal latencies (median 20 ms, sigma 0.5), 30-minute horizon, a look every
second, alpha 0.01.
"""
import argparse
import json
import subprocess
import sys
import time

SCENARIOS = [
    ("A/A, 10% canary", [], "false rollbacks <= 1%, upper95 <= 1.5%"),
    ("A/A, weights 5/25/50/100", ["--steps", "5,25,50,100"], "same"),
    ("errors 1% -> 5%", ["--canary-error-rate", "0.05"], "median <= 25 s, p90 <= 45 s, max <= 300 s"),
    ("errors 1% -> 2%", ["--canary-error-rate", "0.02"], "median <= 240 s, p90 <= 420 s, power >= 99%"),
    ("latency x1.5", ["--latency-scale", "1.5"], "median <= 15 s, p90 <= 25 s"),
    ("latency x1.1", ["--latency-scale", "1.1"], "p90 <= 360 s"),
    ("tail: 10% of canary 3x slower", ["--tail-fraction", "0.1", "--tail-factor", "3"], "p90 <= 240 s"),
]


def run(binary, runs, seed, judge, extra):
    cmd = [binary, "simulate", "--rps", "100", "--canary-share", "0.1",
           "--stable-error-rate", "0.01", "--horizon", "1800", "--alpha", "0.01",
           "--runs", str(runs), "--seed", str(seed), "--judge", judge] + extra
    started = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out), time.monotonic() - started


def spread(s):
    if not s:
        return "-"
    return f"{s['median']:.0f} / {s['p90']:.0f} / {s['max']:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--binary", default="target/release/serin")
    a = ap.parse_args()
    print("| scenario | judge | rollbacks / runs | rate (upper95) | time to rollback s (median / p90 / max) | canary requests to rollback (median / p90 / max) | goal |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, extra, goal in SCENARIOS:
        for judge, more in (("sequential", []), ("flagger", []),
                            ("flagger 95%", ["--flagger-min-success-rate", "95"])):
            r, secs = run(a.binary, a.runs, a.seed, judge.split()[0], extra + more)
            print(f"| {name} | {judge} | {r['rollbacks']} / {r['runs']} | "
                  f"{r['false_rollback_rate']:.4f} ({r['false_rollback_upper95']:.4f}) | "
                  f"{spread(r['time_to_rollback_s'])} | {spread(r['canary_requests_to_rollback'])} | "
                  f"{goal if judge == 'sequential' else ''} |", flush=True)
            print(f"  {name} / {judge}: {secs:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
