"""Unit tests that need no Serin binary: a tiny local HTTP stub stands in."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import serin_client
import serin_client.client
from serin_client import (
    ActionAnswer,
    AuthError,
    CanaryPyClient,
    ConflictError,
    Deployment,
    ForbiddenError,
    NotFoundError,
    PercentageAnswer,
    Product,
    RateLimitedError,
    Release,
    RolloutStatus,
    SerinClient,
    SerinConnectionError,
    SerinError,
    SerinTimeoutError,
    ServerError,
    Signal,
    SignalInput,
    ValidationError,
    WatchTimeoutError,
    format_timestamp,
    parse_timestamp,
    route_locally,
)
from serin_client._http import parse_retry_after
from serin_client.errors import error_from_response

UTC = timezone.utc

PRODUCT = {
    "id": 1,
    "name": "web",
    "description": None,
    "created_at": "2024-05-01T12:00:00Z",
    "updated_at": "2024-05-01T12:00:00.123456789Z",
}
RELEASE = {
    "id": 7,
    "product_id": 1,
    "product_name": "web",
    "version": "1.2.0",
    "status": "released",
    "description": "tidy",
    "created_at": "2024-05-01T12:00:00Z",
    "updated_at": "2024-05-01T13:00:00+00:00",
    "released_at": "2024-05-01T13:00:00.5Z",
}
SIGNAL = {
    "id": 3,
    "release_id": 7,
    "product_name": "web",
    "version": "1.2.0",
    "lane": "canary",
    "name": "errors",
    "kind": "counter",
    "value": 2,
    "tags": {"region": "eu"},
    "timestamp": "2024-05-01T13:05:00.000000001Z",
}


# ------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01 12:00:00Z", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123Z", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T12:00:00.999999999Z", datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=UTC)),
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T07:30:00.25-04:30", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-01T14:00:00+0200", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_parse_timestamp_keeps_offset() -> None:
    parsed = parse_timestamp("2024-05-01T14:00:00+02:00")
    assert parsed.utcoffset() == timedelta(hours=2)
    assert parse_timestamp("2024-05-01T14:00:00Z").tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2024-05-01", "2024-13-01T00:00:00Z", "2024-05-01T25:00:00Z",
     "2024-05-01T12:00:00.Z", "2024-05-01T12:00:00+2:00", "2024-05-01T12:00:00+24:00"],
)
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_format_timestamp() -> None:
    assert format_timestamp(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    assert (
        format_timestamp(datetime(2024, 5, 1, 14, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2))))
        == "2024-05-01T12:00:00.250000Z"
    )
    # naive datetimes are taken as UTC
    assert format_timestamp(datetime(2024, 5, 1, 12, 0, 0, 7)) == "2024-05-01T12:00:00.000007Z"
    assert format_timestamp(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0999-01-02T03:04:05Z"


def test_timestamp_round_trip() -> None:
    value = datetime(2023, 1, 31, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=-7)))
    assert parse_timestamp(format_timestamp(value)) == value


# ---------------------------------------------------------------------- models


def test_models_from_dict() -> None:
    product = Product.from_dict(PRODUCT)
    assert product.updated_at == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert product.description is None

    release = Release.from_dict(dict(RELEASE, future_field="ignored"))
    assert release.status == "released" and release.is_released
    assert release.released_at == datetime(2024, 5, 1, 13, 0, 0, 500000, tzinfo=UTC)
    assert Release.from_dict(dict(RELEASE, released_at=None)).released_at is None

    signal = Signal.from_dict(SIGNAL)
    assert signal.value == 2.0 and isinstance(signal.value, float)
    assert signal.tags == {"region": "eu"}
    assert signal.timestamp == datetime(2024, 5, 1, 13, 5, tzinfo=UTC)


def test_signal_input_to_dict() -> None:
    minimal = SignalInput("web", "1.0.0", "canary", "cpu", 0.5).to_dict()
    assert minimal == {"product_name": "web", "version": "1.0.0", "lane": "canary",
                       "name": "cpu", "value": 0.5, "kind": "gauge"}
    full = SignalInput("web", "1.0.0", "stable", "ok", 1, kind="outcome", tags={"a": "b"},
                       timestamp=datetime(2024, 5, 1, tzinfo=UTC)).to_dict()
    assert full["tags"] == {"a": "b"}
    assert full["timestamp"] == "2024-05-01T00:00:00Z"


# ---------------------------------------------------------------------- errors


def test_error_mapping_by_status() -> None:
    body = json.dumps({"error": "boom", "code": "SOME_CODE", "details": {}}).encode()
    expected = {400: ValidationError, 422: ValidationError, 401: AuthError, 403: ForbiddenError,
                404: NotFoundError, 409: ConflictError, 500: ServerError, 503: ServerError,
                418: SerinError, 429: RateLimitedError}
    for status, cls in expected.items():
        err = error_from_response(status, body)
        assert type(err) is cls, status
        assert (err.status, err.code, err.message, err.details) == (status, "SOME_CODE", "boom", {})


def test_error_details_and_str() -> None:
    body = b'{"error": "name must not be empty", "code": "VALIDATION_FAILED", "details": {"field": "name"}}'
    err = error_from_response(400, body)
    assert isinstance(err, ValidationError)
    assert err.field == "name"
    assert err.details == {"field": "name"}
    assert str(err) == "[400 VALIDATION_FAILED] name must not be empty"
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ValidationError and copy.details == err.details and copy.code == err.code


def test_error_without_json_body() -> None:
    err = error_from_response(502, b"<html>Bad Gateway</html>", "Bad Gateway")
    assert isinstance(err, ServerError)
    assert err.code == "UNKNOWN_ERROR"
    assert "Bad Gateway" in err.message
    empty = error_from_response(404, b"", "Not Found")
    assert isinstance(empty, NotFoundError) and empty.message == "HTTP 404 Not Found"


# ------------------------------------------------------- client over a stub API


Reply = Tuple[int, Any, Dict[str, str]]


class StubAPI:
    """Answers canned replies per (method, path) and records what it was sent.

    It speaks HTTP/1.1 with keep-alive, like the real server, and records the
    client's port with every request, so tests can tell which requests shared
    a connection. ``reply`` can queue several answers for one route (the last
    one repeats). ``drop_next`` makes it close the connection on the next
    request without answering; ``close_after_reply`` makes it close every
    connection after answering without saying so (like a server's idle timeout).
    """

    def __init__(self) -> None:
        self.replies: Dict[Tuple[str, str], List[Reply]] = {}
        self.requests: List[Dict[str, Any]] = []
        self.delay = 0.0
        self.drop_next = False
        self.close_after_reply = False
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with stub.lock:
                    stub.requests.append({
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(raw) if raw else None,
                        "port": self.client_address[1],
                    })
                    drop, stub.drop_next = stub.drop_next, False
                    queued = stub.replies.get((self.command, self.path))
                    if queued:
                        status, body, headers = queued.pop(0) if len(queued) > 1 else queued[0]
                    else:
                        status, body, headers = (
                            404, {"error": "no route", "code": "ROUTE_NOT_FOUND", "details": {}}, {}
                        )
                if drop:
                    self.close_connection = True
                    return
                if stub.delay:
                    time.sleep(stub.delay)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                if stub.close_after_reply:
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def reply(self, method: str, path: str, status: int, body: Any,
              headers: Optional[Dict[str, str]] = None) -> None:
        """Answer ``method path`` with this from now on."""
        self.replies[(method, path)] = [(status, body, headers or {})]

    def replies_in_turn(self, method: str, path: str, *replies: Reply) -> None:
        """Answer ``method path`` with these in turn, the last one from then on."""
        self.replies[(method, path)] = list(replies)

    @property
    def last(self) -> Dict[str, Any]:
        return self.requests[-1]


@pytest.fixture
def stub() -> Iterator[StubAPI]:
    api = StubAPI()
    api.thread.start()
    yield api
    api.httpd.shutdown()
    api.httpd.server_close()


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """The client's waits (429s, watch polls), recorded instead of slept."""
    waits: List[float] = []
    monkeypatch.setattr(serin_client.client, "_sleep", waits.append)
    return waits


def test_latest_stable_version(stub: StubAPI) -> None:
    stub.reply("GET", "/release/web/latest", 200, RELEASE)
    client = SerinClient(stub.url + "/")
    assert client.get_latest_stable_version("web") == "1.2.0"
    assert stub.last["headers"]["Accept"] == "application/json"
    assert "Authorization" not in stub.last["headers"]


def test_api_key_is_sent_as_bearer(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "0.1.0"})
    client = CanaryPyClient(stub.url, api_key="s3cret")
    assert client.health().ok
    assert stub.last["headers"]["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(client)


def test_path_segments_are_quoted(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/products/a%2Fb%20c", 200, dict(PRODUCT, name="a/b c"))
    assert SerinClient(stub.url).get_product("a/b c").name == "a/b c"


def test_typed_error_from_response_body(stub: StubAPI) -> None:
    stub.reply("GET", "/release/web/latest", 404,
               {"error": "web has no stable release", "code": "NO_STABLE_RELEASE", "details": {}})
    with pytest.raises(NotFoundError) as info:
        SerinClient(stub.url).get_latest_stable_release("web")
    assert info.value.code == "NO_STABLE_RELEASE"
    assert info.value.status == 404
    assert info.value.message == "web has no stable release"


def test_request_bodies(stub: StubAPI) -> None:
    client = SerinClient(stub.url)
    stub.reply("POST", "/api/v1/products", 201, PRODUCT)
    client.create_product("web")
    assert stub.last["body"] == {"name": "web"}
    assert stub.last["headers"]["Content-Type"] == "application/json"

    stub.reply("POST", "/release", 201, dict(RELEASE, status="draft", released_at=None))
    client.create_release("web", "1.2.0", description="tidy")
    assert stub.last["body"] == {"product_name": "web", "version": "1.2.0", "description": "tidy"}

    stub.reply("PATCH", "/api/v1/releases/7", 200, RELEASE)
    for call, status in [(client.approve_release, "approved"), (client.release, "released"),
                         (client.mark_released, "released"), (client.cancel_release, "cancelled"),
                         (client.rollback_release, "rolled_back")]:
        call(7)
        assert stub.last["method"] == "PATCH"
        assert stub.last["body"] == {"status": status}

    stub.reply("POST", "/signal", 201, SIGNAL)
    signal = client.send_signal_to_canary(
        "web", "1.2.0", "errors", 2, kind="counter", tags={"region": "eu"},
        timestamp=datetime(2024, 5, 1, 15, 5, tzinfo=timezone(timedelta(hours=2))),
    )
    assert signal.lane == "canary"
    assert stub.last["body"] == {
        "product_name": "web", "version": "1.2.0", "lane": "canary", "name": "errors",
        "value": 2, "kind": "counter", "tags": {"region": "eu"},
        "timestamp": "2024-05-01T13:05:00Z",
    }
    client.send_signal("web", "1.2.0", "cpu", 0.1, lane="stable")
    assert stub.last["body"]["lane"] == "stable"
    assert stub.last["body"]["kind"] == "gauge"
    assert "timestamp" not in stub.last["body"] and "tags" not in stub.last["body"]


def test_send_signals_batch(stub: StubAPI) -> None:
    stub.reply("POST", "/api/v1/signals/batch", 201, {"accepted": 2})
    client = SerinClient(stub.url)
    accepted = client.send_signals([
        SignalInput("web", "1.2.0", "canary", "cpu", 0.5),
        {"product_name": "web", "version": "1.2.0", "lane": "stable", "name": "cpu",
         "value": 0.4, "timestamp": datetime(2024, 5, 1, tzinfo=UTC)},
    ])
    assert accepted == 2
    sent = stub.last["body"]["signals"]
    assert [s["lane"] for s in sent] == ["canary", "stable"]
    assert sent[1]["timestamp"] == "2024-05-01T00:00:00Z"
    count = len(stub.requests)
    assert client.send_signals([]) == 0
    assert len(stub.requests) == count  # nothing sent for an empty batch


def page(key: str, items: List[Any], number: int, has_next: bool) -> Dict[str, Any]:
    return {key: items, "count": len(items),
            "pagination": {"page": number, "page_size": 100, "total_pages": 0, "total_items": 0,
                           "has_next": has_next, "has_prev": number > 1}}


def test_list_endpoints_follow_every_page(stub: StubAPI) -> None:
    products = [dict(PRODUCT, id=i, name=f"p{i:03d}") for i in range(1, 251)]
    base = "/api/v1/products?page={}&page_size=100"
    stub.reply("GET", base.format(1), 200, page("items", products[:100], 1, True))
    stub.reply("GET", base.format(2), 200, page("items", products[100:200], 2, True))
    stub.reply("GET", base.format(3), 200, page("items", products[200:], 3, False))
    client = SerinClient(stub.url)
    assert [p.name for p in client.list_products()] == [p["name"] for p in products]
    assert [r["path"] for r in stub.requests] == [base.format(n) for n in (1, 2, 3)]

    # The iterator asks for a page only when the iteration reaches it.
    del stub.requests[:]
    it = client.iter_products()
    assert stub.requests == []
    assert next(it).name == "p001"
    assert len(stub.requests) == 1
    assert sum(1 for _ in it) == 249
    assert len(stub.requests) == 3


def test_list_releases_pages_and_deduplicates(stub: StubAPI) -> None:
    # A release created between the two reads shifts page 2 by one: r100 shows
    # up again at its top, and is not returned twice.
    releases = [dict(RELEASE, id=i, version=f"1.0.{i}") for i in range(1, 102)]
    base = "/api/v1/products/a%20b/releases?page={}&page_size=100"
    stub.reply("GET", base.format(1), 200, page("items", releases[:100], 1, True))
    stub.reply("GET", base.format(2), 200, page("items", releases[99:], 2, False))
    client = SerinClient(stub.url)
    got = client.list_releases("a b")
    assert [r.id for r in got] == list(range(1, 102))


def test_list_without_pagination_block_is_one_page(stub: StubAPI) -> None:
    # An older server's answer (or one that stops paging): one request, no loop.
    stub.reply("GET", "/api/v1/products?page=1&page_size=100", 200, {"items": [PRODUCT]})
    assert [p.name for p in SerinClient(stub.url).list_products()] == ["web"]
    # An empty page that claims a next one ends the list too.
    stub.reply("GET", "/api/v1/products?page=1&page_size=100", 200, page("items", [], 1, True))
    assert SerinClient(stub.url).list_products() == []
    assert len(stub.requests) == 2


def test_list_deployments_with_filters(stub: StubAPI) -> None:
    other = dict(DEPLOYMENT, id="canary_2")
    base = "/api/v1/canary/deployments?status=active&queue_name=e%20q&page={}&page_size=100"
    stub.reply("GET", base.format(1), 200, page("deployments", [DEPLOYMENT], 1, True))
    stub.reply("GET", base.format(2), 200, page("deployments", [other], 2, False))
    got = SerinClient(stub.url).list_deployments(status="active", queue_name="e q")
    assert [d.id for d in got] == ["canary_1", "canary_2"]
    assert all(isinstance(d, Deployment) for d in got)


def test_list_error_on_a_later_page(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/products?page=1&page_size=100", 200, page("items", [PRODUCT], 1, True))
    stub.reply("GET", "/api/v1/products?page=2&page_size=100", 500,
               {"error": "db down", "code": "DATABASE_UNAVAILABLE", "details": {}})
    it = SerinClient(stub.url).iter_products()
    assert next(it).name == "web"
    with pytest.raises(ServerError):
        next(it)
    with pytest.raises(ServerError):
        SerinClient(stub.url).list_products()


def test_malformed_success_response(stub: StubAPI) -> None:
    stub.reply("GET", "/release/web/latest", 200, b"not json")
    stub.reply("GET", "/api/v1/releases/1", 200, {"id": 1})
    client = SerinClient(stub.url)
    with pytest.raises(SerinError) as info:
        client.get_latest_stable_release("web")
    assert info.value.code == "INVALID_RESPONSE"
    with pytest.raises(SerinError) as info:
        client.get_release(1)
    assert info.value.code == "INVALID_RESPONSE"


def test_bad_arguments_fail_before_sending(stub: StubAPI) -> None:
    client = SerinClient(stub.url)
    with pytest.raises(ValueError):
        client.send_signal_to_canary("web", "1.0.0", "cpu", float("nan"))
    with pytest.raises(TypeError):
        client.get_release("7")  # type: ignore[arg-type]
    assert stub.requests == []
    with pytest.raises(ValueError):
        SerinClient("localhost:8080")


def test_timeout(stub: StubAPI) -> None:
    stub.delay = 1.0
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "x"})
    with pytest.raises(SerinTimeoutError) as info:
        SerinClient(stub.url, timeout=0.2).health()
    assert isinstance(info.value, SerinConnectionError)
    assert info.value.status is None
    assert info.value.code == "TIMEOUT"


# ----------------------------------------------------------------- connection


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    client = SerinClient(f"http://127.0.0.1:{_closed_port()}", timeout=5)
    with pytest.raises(SerinConnectionError) as info:
        client.get_latest_stable_version("web")
    err = info.value
    assert isinstance(err, SerinError)
    assert err.status is None
    assert err.code == "CONNECTION_ERROR"
    assert "127.0.0.1" in err.message


# ------------------------------------------------------- canary and workers


DEPLOYMENT = {
    "id": "canary_1",
    "queue_name": "emails",
    "tenant_id": None,
    "stable_version": "1.0",
    "canary_version": "1.1",
    "current_percent": 20,
    "target_percent": 20,
    "status": "active",
    "start_time": "2024-05-01T12:00:00Z",
    "last_update": "2024-05-01T12:00:00.5Z",
    "completed_at": None,
    "config": {"routing_strategy": "split_queue", "sticky_routing": True, "auto_promotion": False},
    "created_by": "admin",
    "metadata": {"team": "mail"},
    "upstreams": {"stable": [], "canary": []},
    "route": {},
    "status_reason": None,
    "revision": 1,
    "future_field": [1, 2],
}
ROLLOUT = {
    "spec": {"steps": [{"set_weight": 10}, {"pause": {}}, {"set_weight": 100}],
             "judges": {"threshold": True}},
    "step": 1,
    "step_started_at": "2024-05-01T12:01:00Z",
    "ready": False,
}
ROLLOUT_VIEW = {
    "deployment_id": "canary_1",
    "status": "active",
    "status_reason": None,
    "current_percent": 10,
    "auto_promotion": True,
    "waiting_for": "a person to continue",
    "steps": [
        {"index": 0, "description": "set weight 10%", "state": "done", "seconds_left": None},
        {"index": 1, "description": "pause until continued", "state": "running", "seconds_left": None},
        {"index": 2, "description": "set weight 100%", "state": "pending", "seconds_left": None},
    ],
    "rollout": ROLLOUT,
    "judgement": None,
    "health_status": "unknown",
}
PERCENTAGE_ANSWER = {"success": True, "percentage": 50, "updated_at": "2024-05-01T12:02:00Z"}


def action(reason: Optional[str] = None) -> Dict[str, Any]:
    return {"success": True, "message": "done", "reason": reason, "timestamp": "2024-05-01T12:03:00Z"}


def test_deployment_model() -> None:
    d = Deployment.from_dict(DEPLOYMENT)
    assert (d.id, d.queue_name, d.stable_version, d.canary_version) == ("canary_1", "emails", "1.0", "1.1")
    assert (d.status, d.current_percent, d.target_percent, d.revision) == ("active", 20, 20, 1)
    assert d.start_time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert d.completed_at is None and d.status_reason is None and d.rollout is None
    assert d.routing_strategy == "split_queue" and d.sticky_routing and not d.is_final
    assert d.metadata == {"team": "mail"}
    # The dict it replaced: item access, get, keys, equality, dict(), unknown fields.
    assert d["id"] == "canary_1" and d["config"]["sticky_routing"] is True
    assert d.get("missing", "x") == "x" and "future_field" in d and d["future_field"] == [1, 2]
    assert d == DEPLOYMENT and DEPLOYMENT == d and dict(d) == DEPLOYMENT and d.raw == DEPLOYMENT
    assert d != dict(DEPLOYMENT, revision=2)
    assert route_locally(d, "emails", "user-42") == route_locally(DEPLOYMENT, "emails", "user-42")
    with pytest.raises(TypeError):
        d["id"] = "x"  # type: ignore[index]
    assert "raw" not in repr(d) and "canary_1" in repr(d)
    assert pickle.loads(pickle.dumps(d)) == d

    failed = Deployment.from_dict(dict(DEPLOYMENT, status="failed", status_reason="errors",
                                       completed_at="2024-05-01T13:00:00Z", rollout=ROLLOUT))
    assert failed.is_final and failed.status_reason == "errors"
    assert failed.completed_at == datetime(2024, 5, 1, 13, tzinfo=UTC)
    assert failed.rollout is not None
    assert (failed.rollout.step, failed.rollout.total_steps, failed.rollout.finished) == (1, 3, False)
    assert failed.rollout.steps[0] == {"set_weight": 10}
    assert failed.rollout.spec["judges"] == {"threshold": True}

    for missing in ("id", "status", "current_percent", "start_time"):
        with pytest.raises(KeyError):
            Deployment.from_dict({k: v for k, v in DEPLOYMENT.items() if k != missing})


def test_rollout_status_model() -> None:
    view = RolloutStatus.from_dict(ROLLOUT_VIEW)
    assert view.deployment_id == "canary_1" and view.waiting_for == "a person to continue"
    assert [s.state for s in view.steps] == ["done", "running", "pending"]
    assert view.current_step is not None and view.current_step.index == 1
    assert view.rollout.step == 1 and view.auto_promotion and not view.is_final
    assert view.raw == ROLLOUT_VIEW


def test_canary_requests(stub: StubAPI) -> None:
    base = "/api/v1/canary/deployments"
    stub.reply("POST", base, 201, DEPLOYMENT)
    stub.reply("GET", f"{base}/canary_1", 200, DEPLOYMENT)
    stub.reply("PUT", f"{base}/canary_1/percentage", 200, PERCENTAGE_ANSWER)
    stub.reply("POST", f"{base}/canary_1/promote", 200, action())
    stub.reply("POST", f"{base}/canary_1/rollback", 200, action("too many errors"))
    stub.reply("POST", f"{base}/canary_1/abort", 200, action("aborted by k"))
    stub.reply("GET", f"{base}/canary_1/metrics", 200, {"stable": {}, "canary": {}})
    stub.reply("GET", f"{base}/canary_1/health", 200, {"overall_status": "unknown"})
    client = SerinClient(stub.url, api_key="k")

    created = client.create_deployment(
        "emails", "1.0", "1.1", percentage=20, sticky_routing=True, profile=None
    )
    assert isinstance(created, Deployment) and created == DEPLOYMENT
    assert stub.last["body"] == {
        "queue_name": "emails",
        "stable_version": "1.0",
        "canary_version": "1.1",
        "percentage": 20,
        "sticky_routing": True,
    }
    fetched = client.get_deployment("canary_1")
    assert fetched["id"] == fetched.id == "canary_1"
    assert client.get_deployment(fetched) == fetched  # a Deployment works as the id too

    answer = client.set_percentage("canary_1", 50)
    assert isinstance(answer, PercentageAnswer)
    assert answer["percentage"] == answer.percentage == 50 and answer.success
    assert answer.updated_at == datetime(2024, 5, 1, 12, 2, tzinfo=UTC)
    assert (stub.last["method"], stub.last["body"]) == ("PUT", {"percentage": 50})

    promoted = client.promote(fetched)
    assert isinstance(promoted, ActionAnswer) and promoted.success and promoted["success"] is True
    assert stub.last["path"] == f"{base}/canary_1/promote"
    rolled = client.rollback("canary_1", "too many errors")
    assert stub.last["body"] == {"reason": "too many errors"}
    assert rolled.reason == rolled["reason"] == "too many errors"
    client.rollback("canary_1")
    assert stub.last["body"] == {}
    assert client.abort("canary_1").reason == "aborted by k"
    assert stub.last["path"] == f"{base}/canary_1/abort"
    assert client.deployment_metrics("canary_1") == {"stable": {}, "canary": {}}
    assert client.deployment_health(fetched)["overall_status"] == "unknown"
    with pytest.raises(TypeError):
        client.set_percentage("canary_1", True)
    with pytest.raises(TypeError):
        client.get_deployment(7)  # type: ignore[arg-type]


def test_canary_answer_of_the_wrong_shape(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/canary/deployments/canary_1", 200, {"id": "canary_1"})
    stub.reply("PUT", "/api/v1/canary/deployments/canary_1/percentage", 200, {"success": True})
    client = SerinClient(stub.url)
    for call in (lambda: client.get_deployment("canary_1"), lambda: client.set_percentage("canary_1", 5)):
        with pytest.raises(SerinError) as info:
            call()
        assert info.value.code == "INVALID_RESPONSE"


def test_start_rollout_and_status(stub: StubAPI) -> None:
    base = "/api/v1/canary/deployments"
    stub.reply("POST", base, 201, dict(DEPLOYMENT, rollout=ROLLOUT))
    stub.reply("GET", f"{base}/canary_1/rollout", 200, ROLLOUT_VIEW)
    stub.reply("POST", f"{base}/canary_1/continue", 200, dict(ROLLOUT_VIEW, waiting_for=None))
    client = SerinClient(stub.url)

    steps = [{"set_weight": 10}, {"pause": {}}, {"set_weight": 100}]
    d = client.start_rollout("emails", "1.0", "1.1", steps, auto_promotion=True, min_duration="0s")
    assert d.rollout is not None and d.rollout.total_steps == 3
    assert stub.last["body"] == {"queue_name": "emails", "stable_version": "1.0", "canary_version": "1.1",
                                 "auto_promotion": True, "min_duration": "0s", "rollout": {"steps": steps}}
    plan = {"steps": steps, "judges": {"sequential": False}}
    client.start_rollout("emails", "1.0", "1.1", plan)
    assert stub.last["body"]["rollout"] == plan
    for bad in ([], {"judges": {}}):
        with pytest.raises(ValueError):
            client.start_rollout("emails", "1.0", "1.1", bad)
    with pytest.raises(TypeError):
        client.start_rollout("emails", "1.0", "1.1", "set_weight: 10")  # type: ignore[arg-type]

    status = client.rollout_status(d)
    assert isinstance(status, RolloutStatus) and status.waiting_for == "a person to continue"
    assert client.continue_rollout("canary_1").waiting_for is None
    assert stub.last["method"] == "POST" and stub.last["path"] == f"{base}/canary_1/continue"


def test_watch_polls_until_final(stub: StubAPI, no_real_sleep: List[float]) -> None:
    path = "/api/v1/canary/deployments/canary_1"
    stub.replies_in_turn(
        "GET", path,
        (200, DEPLOYMENT, {}),
        (200, DEPLOYMENT, {}),  # unchanged: no update
        (503, {"error": "restarting", "code": "NOT_READY", "details": {}}, {}),  # tried again
        (200, dict(DEPLOYMENT, current_percent=50, revision=2), {}),
        (200, dict(DEPLOYMENT, current_percent=100, status="completed", revision=3), {}),
    )
    seen: List[Tuple[int, str]] = []
    final = SerinClient(stub.url).watch(
        "canary_1", timeout=60, poll_interval=0.5,
        on_update=lambda d: seen.append((d.current_percent, d.status)),
    )
    assert final.status == "completed" and final.is_final and isinstance(final, Deployment)
    assert seen == [(20, "active"), (50, "active"), (100, "completed")]
    assert len(stub.requests) == 5
    assert no_real_sleep == [0.5] * 4


def test_watch_raises_on_other_errors_and_on_timeout(
    stub: StubAPI, no_real_sleep: List[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = SerinClient(stub.url)
    with pytest.raises(NotFoundError):
        client.watch("canary_9", timeout=60)
    assert no_real_sleep == []

    # Real waits here: the deadline is measured on the real clock.
    def sleep(seconds: float) -> None:
        no_real_sleep.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(serin_client.client, "_sleep", sleep)
    stub.reply("GET", "/api/v1/canary/deployments/canary_1", 200, dict(DEPLOYMENT, status="paused"))
    started = time.monotonic()
    with pytest.raises(WatchTimeoutError) as info:
        client.watch("canary_1", timeout=0.5, poll_interval=0.2)
    assert 0.5 <= time.monotonic() - started < 3
    assert len(no_real_sleep) >= 2 and all(0 < w <= 0.2 for w in no_real_sleep)
    assert sum(no_real_sleep) <= 0.5 + 1e-6  # the last wait is cut to the deadline
    err = info.value
    assert err.code == "WATCH_TIMEOUT" and err.status is None and isinstance(err, SerinError)
    assert err.deployment is not None and err.deployment.status == "paused"
    assert "paused" in err.message
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is WatchTimeoutError and copy.deployment == err.deployment
    with pytest.raises(ValueError):
        client.watch("canary_1", poll_interval=0)


def test_route_request(stub: StubAPI) -> None:
    answer = {"deployment_id": None, "lane": "stable", "queue": "a b", "consumer_group": None,
              "percentage": 0, "sticky": False, "bucket": None}
    stub.reply("GET", "/api/v1/canary/route?queue=a%20b&key=user%2F1%26x", 200, answer)
    stub.reply("GET", "/api/v1/canary/route?queue=a%20b", 200, answer)
    stub.reply("GET", "/api/v1/canary/route?queue=a%20b&tenant_id=t1", 200, answer)
    client = SerinClient(stub.url)
    assert client.route("a b", "user/1&x") == answer
    assert client.route("a b") == answer
    assert client.route("a b", tenant_id="t1") == answer


def test_worker_requests(stub: StubAPI) -> None:
    worker = {"id": "w1", "lane": "canary"}
    stub.reply("POST", "/api/v1/canary/workers", 201, worker)
    stub.reply("POST", "/api/v1/canary/workers/w%2F1/heartbeat", 200, worker)
    client = SerinClient(stub.url)

    assert client.register_worker("w1", "1.1", "canary", "emails") == worker
    assert stub.last["body"] == {"id": "w1", "version": "1.1", "lane": "canary", "queues": ["emails"]}
    client.register_worker("w1", "1.1", "canary", ("a", "b"), metadata={"pid": 3})
    assert stub.last["body"]["queues"] == ["a", "b"]
    assert stub.last["body"]["metadata"] == {"pid": 3}

    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    client.heartbeat(
        "w/1",
        metrics={"jobs_processed": 2, "last_job_at": when},
        job_results=[{"queue": "emails", "success": False, "duration_ms": 3.5, "timestamp": when}],
        status="healthy",
    )
    assert stub.last["body"] == {
        "metrics": {"jobs_processed": 2, "last_job_at": "2024-05-01T12:00:00Z"},
        "job_results": [{"queue": "emails", "success": False, "duration_ms": 3.5,
                         "timestamp": "2024-05-01T12:00:00Z"}],
        "status": "healthy",
    }
    client.heartbeat("w/1")
    assert stub.last["body"] == {"job_results": []}


def test_canary_non_object_answer(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/canary/deployments/x", 200, [1, 2])
    with pytest.raises(SerinError) as info:
        SerinClient(stub.url).get_deployment("x")
    assert info.value.code == "INVALID_RESPONSE"


# ------------------------------------------------------- configuration


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SERIN_URL", raising=False)
    monkeypatch.delenv("SERIN_API_KEY", raising=False)
    return monkeypatch


def test_defaults_without_environment(clean_env: pytest.MonkeyPatch) -> None:
    client = SerinClient()
    assert client.base_url == "http://127.0.0.1:8080" == serin_client.DEFAULT_BASE_URL
    assert client.api_key is None
    assert client.timeout == 10.0 and client.max_retry_wait == 30.0


def test_environment_configures_the_client(stub: StubAPI, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SERIN_URL", stub.url + "/")
    clean_env.setenv("SERIN_API_KEY", "from-env")
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    client = SerinClient()
    assert client.base_url == stub.url and client.api_key == "from-env"
    assert client.health().ok
    assert stub.last["headers"]["Authorization"] == "Bearer from-env"
    assert "from-env" not in repr(client)


def test_explicit_arguments_win_over_environment(stub: StubAPI, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SERIN_URL", "http://127.0.0.1:1")  # nothing listens there
    clean_env.setenv("SERIN_API_KEY", "from-env")
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    SerinClient(stub.url, api_key="explicit").health()
    assert stub.last["headers"]["Authorization"] == "Bearer explicit"
    # api_key="" means "no key", whatever the environment holds.
    anonymous = SerinClient(stub.url, api_key="")
    assert anonymous.api_key is None
    anonymous.health()
    assert "Authorization" not in stub.last["headers"]
    assert SerinClient(base_url=stub.url).api_key == "from-env"  # only the URL was given


def test_invalid_url_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SERIN_URL", "serin:8080")
    with pytest.raises(ValueError, match="serin:8080"):
        SerinClient()
    with pytest.raises(ValueError):
        SerinClient("http://127.0.0.1:8080", max_retry_wait=-1)


# ------------------------------------------------------ errors per kind


def test_forbidden_is_an_auth_error(stub: StubAPI) -> None:
    stub.reply("POST", "/api/v1/products", 403,
               {"error": "this needs the engineer role", "code": "FORBIDDEN",
                "details": {"required_role": "engineer"}})
    with pytest.raises(ForbiddenError) as info:
        SerinClient(stub.url).create_product("web")
    assert isinstance(info.value, AuthError)
    assert (info.value.status, info.value.code) == (403, "FORBIDDEN")
    assert info.value.details == {"required_role": "engineer"}


def test_rate_limited_error_keeps_retry_after() -> None:
    body = b'{"error": "slow down", "code": "RATE_LIMITED", "details": {"retry_after_seconds": 7}}'
    err = error_from_response(429, body, "Too Many Requests", retry_after=7.0)
    assert isinstance(err, RateLimitedError) and err.retry_after == 7.0
    assert (err.status, err.code, err.message) == (429, "RATE_LIMITED", "slow down")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is RateLimitedError and copy.retry_after == 7.0 and copy.details == err.details
    assert "retry_after=7.0" in repr(err)
    assert error_from_response(429, b"").retry_after is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "header, expected",
    [("10", 10.0), (" 3 ", 3.0), ("1.5", 1.5), ("0", 0.0), (None, None), ("", None),
     ("soon", None), ("-1", None), ("nan", None), ("inf", None),
     ("Wed, 01 May 2024 12:00:30 GMT", 30.0), ("Wed, 01 May 2024 11:00:00 GMT", 0.0)],
)
def test_parse_retry_after(header: Optional[str], expected: Optional[float]) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


def test_every_documented_error_class_exists() -> None:
    """Docstrings name only exception classes that exist (and are exported)."""
    import builtins
    import inspect
    import re

    modules = [serin_client, serin_client.client, serin_client.errors, serin_client.models,
               serin_client.routing, serin_client._http]
    texts = [m.__doc__ or "" for m in modules]
    for name in serin_client.__all__:
        obj = getattr(serin_client, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            texts.append(inspect.getdoc(obj) or "")
            texts += [inspect.getdoc(m) or "" for _, m in inspect.getmembers(obj, callable)]
    named = set(re.findall(r"\b([A-Z][A-Za-z]*Error)\b", "\n".join(texts)))
    assert {"ForbiddenError", "RateLimitedError", "AuthError", "WatchTimeoutError"} <= named
    missing = {n for n in named if not hasattr(serin_client, n) and not hasattr(builtins, n)}
    assert missing == set()


# ---------------------------------------------------------- 429 retries


RATE_LIMITED = {"error": "rate limit exceeded", "code": "RATE_LIMITED", "details": {}}


def test_429_is_waited_out_and_sent_again(stub: StubAPI, no_real_sleep: List[float]) -> None:
    stub.replies_in_turn(
        "POST", "/api/v1/products",
        (429, RATE_LIMITED, {"Retry-After": "2"}),
        (429, RATE_LIMITED, {"Retry-After": "0"}),  # waited as 1 s: never a busy loop
        (201, PRODUCT, {}),
    )
    product = SerinClient(stub.url).create_product("web", description="d")
    assert product.name == "web"
    assert no_real_sleep == [2.0, 1.0]
    assert [r["body"] for r in stub.requests] == [{"name": "web", "description": "d"}] * 3


def test_429_beyond_max_retry_wait_raises(stub: StubAPI, no_real_sleep: List[float]) -> None:
    stub.reply("GET", "/api/v1/health", 429, RATE_LIMITED, {"Retry-After": "10"})
    with pytest.raises(RateLimitedError) as info:
        SerinClient(stub.url, max_retry_wait=25).health()
    assert no_real_sleep == [10.0, 10.0]  # a third wait would pass 25 s: not waited
    assert len(stub.requests) == 3
    assert info.value.retry_after == 10.0 and info.value.code == "RATE_LIMITED"

    del no_real_sleep[:], stub.requests[:]
    with pytest.raises(RateLimitedError):
        SerinClient(stub.url, max_retry_wait=0).health()
    assert no_real_sleep == [] and len(stub.requests) == 1


def test_429_without_retry_after_is_not_retried(stub: StubAPI, no_real_sleep: List[float]) -> None:
    stub.reply("POST", "/api/v1/canary/deployments", 429,
               {"error": "too many live deployments", "code": "CONCURRENCY_LIMIT", "details": {}})
    with pytest.raises(RateLimitedError) as info:
        SerinClient(stub.url).create_deployment("q", "1", "2")
    assert info.value.retry_after is None and info.value.code == "CONCURRENCY_LIMIT"
    assert no_real_sleep == [] and len(stub.requests) == 1


# ------------------------------------------------------------ keep-alive


def test_connection_is_reused(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    stub.reply("POST", "/api/v1/products", 201, PRODUCT)
    client = SerinClient(stub.url)
    for _ in range(5):
        client.health()
        client.create_product("web")
    assert len({r["port"] for r in stub.requests}) == 1
    assert client._pool is not None and client._pool.connections_opened == 1
    # Error answers keep the connection too (their body is read in full).
    with pytest.raises(NotFoundError):
        client.get_product("nope")
    client.health()
    assert client._pool.connections_opened == 1

    client.close()
    assert client._pool.idle_connections == 0
    client.health()  # usable after close: a new connection
    assert client._pool.connections_opened == 2
    with SerinClient(stub.url) as scoped:
        scoped.health()
    assert scoped._pool is not None and scoped._pool.idle_connections == 0


def test_base_path_is_kept(stub: StubAPI) -> None:
    stub.reply("GET", "/serin/api/v1/health", 200, {"status": "ok", "version": "1"})
    assert SerinClient(stub.url + "/serin/").health().ok
    assert stub.last["path"] == "/serin/api/v1/health"


def test_connection_closed_while_idle_is_not_reused(stub: StubAPI) -> None:
    # The server closes each connection after answering, without a
    # "Connection: close" (as an idle timeout does): the next request, even a
    # POST, goes on a new connection instead of failing.
    stub.close_after_reply = True
    stub.reply("POST", "/api/v1/products", 201, PRODUCT)
    client = SerinClient(stub.url)
    client.create_product("a")
    time.sleep(0.2)  # let the close arrive
    client.create_product("b")
    assert [r["body"]["name"] for r in stub.requests] == ["a", "b"]
    assert stub.requests[0]["port"] != stub.requests[1]["port"]


def test_connection_idle_too_long_is_not_reused(stub: StubAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    client = SerinClient(stub.url)
    client.health()
    monkeypatch.setattr(serin_client._http, "MAX_IDLE_SECONDS", 0.0)
    time.sleep(0.01)
    client.health()
    assert stub.requests[0]["port"] != stub.requests[1]["port"]


def test_dropped_reused_connection_is_retried_for_idempotent_methods(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    stub.reply("PUT", "/api/v1/canary/deployments/canary_1/percentage", 200, PERCENTAGE_ANSWER)
    client = SerinClient(stub.url)
    client.health()
    stub.drop_next = True  # closes the reused connection instead of answering
    assert client.health().ok
    assert len(stub.requests) == 3
    assert stub.requests[1]["port"] == stub.requests[0]["port"] != stub.requests[2]["port"]

    stub.drop_next = True
    assert client.set_percentage("canary_1", 50).percentage == 50  # PUT is idempotent
    assert stub.requests[-1]["method"] == "PUT" and len(stub.requests) == 5


def test_dropped_reused_connection_is_not_retried_for_post(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    stub.reply("POST", "/api/v1/products", 201, PRODUCT)
    client = SerinClient(stub.url)
    client.health()
    stub.drop_next = True
    with pytest.raises(SerinConnectionError) as info:
        client.create_product("web")  # may have been done: not sent twice
    assert info.value.code == "CONNECTION_ERROR" and "POST" in info.value.message
    assert [r["method"] for r in stub.requests] == ["GET", "POST"]
    assert client.create_product("web").name == "web"  # the client goes on


def test_dropped_fresh_connection_is_not_retried(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    stub.drop_next = True
    with pytest.raises(SerinConnectionError):
        SerinClient(stub.url).health()  # not a stale connection: a broken server
    assert len(stub.requests) == 1


def test_timeout_on_reused_connection(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "x"})
    client = SerinClient(stub.url, timeout=0.3)
    client.health()
    stub.delay = 1.0
    with pytest.raises(SerinTimeoutError):
        client.health()
    assert len(stub.requests) == 2  # a timeout is not retried
    stub.delay = 0.0
    client.timeout = 5.0
    assert client.health().ok


def test_threads_share_a_client(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
    stub.delay = 0.005
    client = SerinClient(stub.url)
    errors: List[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                assert client.health().ok
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(stub.requests) == 150
    assert client._pool is not None and client._pool.connections_opened <= 6
    assert len({r["port"] for r in stub.requests}) == client._pool.connections_opened


def test_changing_base_url_changes_the_connection(stub: StubAPI) -> None:
    other = StubAPI()
    other.thread.start()
    try:
        for api in (stub, other):
            api.reply("GET", "/api/v1/health", 200, {"status": "ok", "version": "1"})
        client = SerinClient(stub.url)
        client.health()
        client.base_url = other.url
        client.health()
        assert (len(stub.requests), len(other.requests)) == (1, 1)
        with pytest.raises(ValueError):
            client.base_url = "ftp://x"
    finally:
        other.httpd.shutdown()
        other.httpd.server_close()


def test_http_proxy_from_the_environment(stub: StubAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY is honoured as urllib honours it: the request goes to the
    proxy with the absolute URL; NO_PROXY takes a host out of it."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", stub.url)
    stub.reply("GET", "http://serin.invalid:8080/api/v1/health", 200, {"status": "healthy"})
    client = SerinClient("http://serin.invalid:8080", api_key="")
    client.health()
    assert stub.last["path"] == "http://serin.invalid:8080/api/v1/health"
    assert stub.last["headers"]["Host"] == "serin.invalid:8080"
    # NO_PROXY: straight to the (unresolvable) host, which fails to connect.
    monkeypatch.setenv("no_proxy", "serin.invalid")
    with pytest.raises(serin_client.SerinConnectionError):
        SerinClient("http://serin.invalid:8080", api_key="", timeout=2).health()
