"""Fixtures: the real Serin server for the ``server`` tests.

The ``serin_url`` fixture starts ``$SERIN_BIN`` (default
``<repo>/target/debug/serin``) once per session on a free port with a fresh
SQLite database, waits for the ready line on stdout and stops it at the end.
Set ``SERIN_TEST_URL`` to run the tests against a server that is already up.
``rate_limited_url`` is a second server, with a per-key rate limit of one
request a second, for the 429 tests (skipped with ``SERIN_TEST_URL``).

``SERIN_URL`` and ``SERIN_API_KEY`` are removed from the environment of every
test: ``SerinClient()`` reads them, and a developer's shell must not change
what the tests talk to.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Dict, Iterator, List, Optional

import pytest

from serin_client import SerinClient

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "serin"
READY_LINE = re.compile(r"^serin: listening on (https?://\S+)\s*$")
STARTUP_TIMEOUT = 30.0



# The admin key the test server is started with (SERIN_ADMIN_TOKEN); every route
# but health needs a key.
ADMIN_KEY = "srn_python_tests_admin_key_0123456789"

def _pump(stream: IO[str], lines: "queue.Queue[object]") -> None:
    """Forward stdout lines to a queue; keeps draining so the server never blocks."""
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(EOFError)


def _read_stderr(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(stderr unreadable)"
    return text[-8000:] or "(stderr empty)"


def _binary() -> Path:
    """The serin binary, or a skip (a failure when ``CI=true``) if there is none."""
    binary = Path(os.environ.get("SERIN_BIN") or DEFAULT_BIN)
    if not binary.is_file():
        reason = (
            f"serin binary not found at {binary}: build it with `cargo build` "
            "or point SERIN_BIN at one"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


@contextmanager
def _running_server(extra_env: Dict[str, str]) -> Iterator[str]:
    """Start the binary on a free port with a fresh database; yield its URL; stop it."""
    binary = _binary()
    workdir = Path(tempfile.mkdtemp(prefix="serin-pytest-"))
    stderr_path = workdir / "stderr.log"
    command = [
        str(binary),
        "up",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        f"sqlite://{workdir}/serin.db",
    ]
    with open(stderr_path, "wb") as stderr_file:
        env = dict(os.environ, SERIN_ADMIN_TOKEN=ADMIN_KEY, **extra_env)
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
    lines: "queue.Queue[object]" = queue.Queue()
    assert process.stdout is not None
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()

    try:
        url: Optional[str] = None
        seen: List[str] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(
                    f"serin did not print its ready line within {STARTUP_TIMEOUT:.0f}s.\n"
                    f"command: {' '.join(command)}\nstdout: {''.join(seen)!r}\n"
                    f"stderr:\n{_read_stderr(stderr_path)}",
                    pytrace=False,
                )
            try:
                item = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if item is EOFError:
                code = process.wait(timeout=10)
                pytest.fail(
                    f"serin exited (code {code}) before it was ready.\n"
                    f"command: {' '.join(command)}\nstdout: {''.join(seen)!r}\n"
                    f"stderr:\n{_read_stderr(stderr_path)}",
                    pytrace=False,
                )
            line = str(item)
            seen.append(line)
            match = READY_LINE.match(line.strip())
            if match:
                url = match.group(1).rstrip("/")
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        pump.join(timeout=5)
        process.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def serin_url() -> Iterator[str]:
    external = os.environ.get("SERIN_TEST_URL")
    if external:
        yield external.rstrip("/")
        return
    with _running_server({"SERIN_RATE_LIMIT": "0"}) as url:
        yield url


@pytest.fixture(scope="module")
def rate_limited_url() -> Iterator[str]:
    """A server whose admin key may make one request a second (burst 1): Retry-After 1."""
    if os.environ.get("SERIN_TEST_URL"):
        pytest.skip("needs a server started with a rate limit (SERIN_TEST_URL is set)")
    with _running_server({"SERIN_RATE_LIMIT": "60", "SERIN_RATE_BURST": "1"}) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_serin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERIN_URL", raising=False)
    monkeypatch.delenv("SERIN_API_KEY", raising=False)


@pytest.fixture
def client(serin_url: str) -> SerinClient:
    return SerinClient(base_url=serin_url, api_key=os.environ.get("SERIN_TEST_API_KEY", ADMIN_KEY), timeout=30.0)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("web")`` -> ``"web-3f2a9c1d"``: no clashes between tests or runs."""

    def make(prefix: str = "product") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make
