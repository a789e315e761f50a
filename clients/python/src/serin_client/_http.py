"""Keep-alive HTTP transport (stdlib ``http.client``) and ``Retry-After`` parsing.

``urllib.request`` opens a new TCP (and TLS) connection for every request,
which costs a round trip or three per call and leaves sockets in TIME_WAIT.
:class:`ConnectionPool` keeps finished connections to one origin and hands
them to the next request, from any thread: a connection is used by one
request at a time, and only the list of idle connections is shared (under a
lock), so no request waits for another's.

Reusing a connection has one hazard: the server may have closed it while it
sat idle (Serin closes idle connections after 10 s, its header read timeout;
a proxy may do so sooner). Two defences:

* before reuse, a connection idle for longer than :data:`MAX_IDLE_SECONDS`
  is dropped, and so is one whose socket is readable (the server's FIN, or
  bytes nobody asked for, has arrived);
* if a *reused* connection still fails with a reset or a close before any
  answer, the request is sent once more on a fresh connection, but only for
  idempotent methods: a POST may have reached the server before the
  connection died, and sending it twice could do its work twice.
"""

from __future__ import annotations

import email.utils
import http.client
import math
import os
import select
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from email.message import Message
from typing import List, Mapping, NamedTuple, Optional, Tuple, Union

__all__ = [
    "ConnectionPool",
    "Response",
    "IDEMPOTENT_METHODS",
    "MAX_IDLE_SECONDS",
    "MAX_IDLE_CONNECTIONS",
    "parse_retry_after",
]

#: Methods whose repetition has the effect of one request (RFC 9110, 9.2.2):
#: the only ones sent again after a reused connection was found dead.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

#: A connection idle longer than this is not reused. Below Serin's own 10 s,
#: so the client gives a connection up before the server is about to.
MAX_IDLE_SECONDS = 5.0

#: Idle connections kept per client; more (after a burst from many threads)
#: are closed when their request ends.
MAX_IDLE_CONNECTIONS = 8

# A reused connection that fails this way died while idle (RemoteDisconnected
# is a ConnectionResetError). Timeouts are not in the list: a slow server is
# not a dead connection, and waiting twice as long helps nobody.
_DROPPED = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)

Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


class Response(NamedTuple):
    """A complete answer: the body is read, the connection already released."""

    status: int
    reason: str
    headers: Message
    body: bytes


def _is_dropped(sock: Optional[socket.socket]) -> bool:
    """Whether an idle connection's socket is closed or has unexpected data.

    An idle keep-alive connection has nothing to read; if it is readable, the
    peer closed it (EOF) or sent something out of turn. Either way it can't
    carry the next request.
    """
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


class _Idle(NamedTuple):
    conn: Connection
    since: float


class ConnectionPool:
    """Reusable connections to one ``scheme://host:port``, safe to share between threads."""

    def __init__(
        self,
        scheme: str,
        host: str,
        port: Optional[int],
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        self.scheme = scheme
        self.host = host
        self.port = port
        self._ssl_context = ssl_context
        #: The proxy the environment names for this server (``HTTP_PROXY`` /
        #: ``HTTPS_PROXY``, unless ``NO_PROXY`` covers the host), as urllib
        #: reads them: ``(host, port)`` or ``None``.
        self.proxy = _proxy_for(scheme, host)
        self._lock = threading.Lock()
        self._idle: List[_Idle] = []
        self._pid = os.getpid()
        #: How many connections this pool has opened (a diagnostic; tests use it).
        self.connections_opened = 0

    # ----------------------------------------------------------- connections

    def _new(self, timeout: Optional[float]) -> Connection:
        conn: Connection
        if self.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            if self.proxy is not None:
                # TLS to the server through a CONNECT tunnel at the proxy.
                conn = http.client.HTTPSConnection(
                    self.proxy[0], self.proxy[1], timeout=timeout, context=context
                )
                conn.set_tunnel(self.host, self.port)
            else:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)
        elif self.proxy is not None:
            conn = http.client.HTTPConnection(self.proxy[0], self.proxy[1], timeout=timeout)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        with self._lock:
            self.connections_opened += 1
        return conn

    def _acquire(self, timeout: Optional[float]) -> Tuple[Connection, bool]:
        """An idle connection that still looks usable, or a new one; and whether it is reused."""
        stale: List[Connection] = []
        found: Optional[Connection] = None
        with self._lock:
            if self._pid != os.getpid():
                # A forked child shares the parent's sockets: using them would
                # interleave two processes' requests on one stream. Forget them
                # (closing our copy of the descriptor leaves the parent's open).
                stale.extend(idle.conn for idle in self._idle)
                self._idle.clear()
                self._pid = os.getpid()
            now = time.monotonic()
            while self._idle:
                idle = self._idle.pop()  # the most recently used: the least likely to be closed
                if now - idle.since > MAX_IDLE_SECONDS or _is_dropped(idle.conn.sock):
                    stale.append(idle.conn)
                    continue
                found = idle.conn
                break
        for conn in stale:
            conn.close()
        if found is not None:
            return found, True
        return self._new(timeout), False

    def _release(self, conn: Connection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS and self._pid == os.getpid():
                self._idle.append(_Idle(conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections. The pool stays usable: later requests reconnect."""
        with self._lock:
            idle, self._idle = self._idle, []
        for entry in idle:
            entry.conn.close()

    @property
    def idle_connections(self) -> int:
        """How many connections wait for reuse now."""
        with self._lock:
            return len(self._idle)

    # -------------------------------------------------------------- requests

    def _exchange(
        self,
        conn: Connection,
        method: str,
        target: str,
        body: Optional[bytes],
        headers: Mapping[str, str],
        timeout: Optional[float],
    ) -> Response:
        """One request and its whole answer on ``conn``; returns ``conn`` to the pool after."""
        try:
            # The client's timeout may have changed since the connection was made.
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            if self.proxy is not None and self.scheme == "http":
                # A plain-HTTP proxy takes the absolute URL.
                port = f":{self.port}" if self.port else ""
                target = f"http://{self.host}{port}{target}"
            conn.request(method, target, body=body, headers=dict(headers))
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()  # a half-used connection can't be trusted with another request
            raise
        if response.will_close:
            conn.close()
        else:
            self._release(conn)
        return Response(response.status, response.reason or "", response.headers, data)

    def request(
        self,
        method: str,
        target: str,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Response:
        """Send one request (``target`` is the path and query) and read the answer.

        Raises what ``http.client`` and ``socket`` raise (``OSError``,
        ``socket.timeout``, ``http.client.HTTPException``); the caller maps
        them to its own errors.
        """
        headers = headers or {}
        conn, reused = self._acquire(timeout)
        try:
            return self._exchange(conn, method, target, body, headers, timeout)
        except _DROPPED:
            if not reused or method.upper() not in IDEMPOTENT_METHODS:
                raise
        # The idle connection had died under us: once more, on a fresh one.
        return self._exchange(self._new(timeout), method, target, body, headers, timeout)


def _proxy_for(scheme: str, host: str) -> Optional[Tuple[str, int]]:
    """The proxy urllib would use for ``scheme://host``: ``(host, port)`` or ``None``."""
    proxies = urllib.request.getproxies()
    url = proxies.get(scheme)
    if not url or urllib.request.proxy_bypass(host):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        return None  # only plain-HTTP proxies (with CONNECT for TLS), as urllib
    return parts.hostname, parts.port or 80


def parse_retry_after(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` if there is none.

    Accepts delta-seconds (``"10"``, and ``"1.5"`` though HTTP only defines
    whole seconds) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, a
    date in the past meaning 0). Anything else is ``None``: a header that
    can't be read is no promise that waiting helps.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # Python 3.9 returns None for some unparseable dates
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    reference = now or datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())
