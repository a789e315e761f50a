"""A test upstream: answers every GET with its name after a delay, failing a
share of requests with 503. Prints `listening on <port>` once bound.

    python3 upstream.py NAME ERROR_RATE DELAY_MS [SIGMA]

With SIGMA > 0 the delay is lognormal with median DELAY_MS and that log-spread,
like a real service's latencies; without, it is fixed.
"""
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME, ERROR_RATE, DELAY_MS = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
SIGMA = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        delay = DELAY_MS * random.lognormvariate(0.0, SIGMA) if SIGMA > 0 else DELAY_MS
        time.sleep(delay / 1000.0)
        failed = random.random() < ERROR_RATE
        body = (NAME + ("-error" if failed else "") + "\n").encode()
        self.send_response(503 if failed else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-answer (the load generator stopping)


server = Server(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
