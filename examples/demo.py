#!/usr/bin/env python3
"""A demo upstream and a demo load for Serin's Quickstart (standard library only).

    python3 examples/demo.py serve 9001 v1                       # answers "v1"
    python3 examples/demo.py serve 9002 v2 --error-rate 0.3       # 30% answered 500
    python3 examples/demo.py serve 9003 v3 --latency-ms 200       # each answer 200 ms late
    python3 examples/demo.py load http://127.0.0.1:8000/ --rate 50 [--seconds 60]

`serve` answers every GET with its version (and `X-Version`), after
`--latency-ms` (plus up to 20% jitter), failing a share `--error-rate` of
requests with 500. `load` sends `--rate` requests a second, on one kept-alive
connection, until stopped (or for `--seconds`), and prints a line every 10 s.
"""

import argparse
import http.client
import http.server
import random
import sys
import time
import urllib.parse


def serve(port: int, version: str, error_rate: float, latency_ms: float) -> None:
    body = (version + "\n").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: without this, Nagle's
        # algorithm and the peer's delayed ACK hold every answer 40 ms.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            if latency_ms > 0:
                time.sleep(latency_ms * random.uniform(1.0, 1.2) / 1000)
            failed = random.random() < error_rate
            self.send_response(500 if failed else 200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Version", version)
            try:
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client went away

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"demo {version} on http://127.0.0.1:{port}/", file=sys.stderr, flush=True)
    server.serve_forever()


def load(url: str, rate: float, seconds: float) -> None:
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    conn = None
    sent = failed = 0
    start = last = time.monotonic()
    while seconds <= 0 or time.monotonic() - start < seconds:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            failed += r.status >= 500
        except (OSError, http.client.HTTPException):
            failed += 1
            conn = None
        sent += 1
        now = time.monotonic()
        if now - last >= 10:
            print(f"load: {sent} requests, {failed} failed", file=sys.stderr, flush=True)
            last = now
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="an upstream that answers its version")
    s.add_argument("port", type=int)
    s.add_argument("version")
    s.add_argument("--error-rate", type=float, default=0.0)
    s.add_argument("--latency-ms", type=float, default=5.0)
    lo = sub.add_parser("load", help="steady requests to a URL")
    lo.add_argument("url")
    lo.add_argument("--rate", type=float, default=50.0)
    lo.add_argument("--seconds", type=float, default=0.0)
    a = p.parse_args()
    try:
        if a.cmd == "serve":
            serve(a.port, a.version, a.error_rate, a.latency_ms)
        else:
            load(a.url, a.rate, a.seconds)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
