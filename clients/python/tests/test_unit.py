"""Unit tests that need no Serin binary: a tiny local HTTP stub stands in."""

from __future__ import annotations

import json
import pickle
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from serin_client import (
    AuthError,
    CanaryPyClient,
    ConflictError,
    NotFoundError,
    Product,
    Release,
    SerinClient,
    SerinConnectionError,
    SerinError,
    SerinTimeoutError,
    ServerError,
    Signal,
    SignalInput,
    ValidationError,
    format_timestamp,
    parse_timestamp,
)
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
    expected = {400: ValidationError, 422: ValidationError, 401: AuthError, 403: AuthError,
                404: NotFoundError, 409: ConflictError, 500: ServerError, 503: ServerError,
                418: SerinError, 429: SerinError}
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


Reply = Tuple[int, Any]


class StubAPI:
    """Answers canned replies per (method, path) and records what it was sent."""

    def __init__(self) -> None:
        self.replies: Dict[Tuple[str, str], Reply] = {}
        self.requests: List[Dict[str, Any]] = []
        self.delay = 0.0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                stub.requests.append({
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(raw) if raw else None,
                })
                if stub.delay:
                    time.sleep(stub.delay)
                status, body = stub.replies.get(
                    (self.command, self.path),
                    (404, {"error": "no route", "code": "ROUTE_NOT_FOUND", "details": {}}),
                )
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def reply(self, method: str, path: str, status: int, body: Any) -> None:
        self.replies[(method, path)] = (status, body)

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


def test_list_endpoints(stub: StubAPI) -> None:
    stub.reply("GET", "/api/v1/products", 200, {"items": [PRODUCT]})
    stub.reply("GET", "/api/v1/products/web/releases", 200, {"items": [RELEASE, RELEASE]})
    client = SerinClient(stub.url)
    assert [p.name for p in client.list_products()] == ["web"]
    assert len(client.list_releases("web")) == 2


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
    "current_percent": 20,
    "status": "active",
    "config": {"routing_strategy": "split_queue", "sticky_routing": True},
}


def test_canary_requests(stub: StubAPI) -> None:
    base = "/api/v1/canary/deployments"
    stub.reply("POST", base, 201, DEPLOYMENT)
    stub.reply("GET", f"{base}/canary_1", 200, DEPLOYMENT)
    stub.reply("PUT", f"{base}/canary_1/percentage", 200, {"success": True, "percentage": 50})
    stub.reply("POST", f"{base}/canary_1/promote", 200, {"success": True})
    stub.reply("POST", f"{base}/canary_1/rollback", 200, {"success": True})
    stub.reply("GET", f"{base}/canary_1/metrics", 200, {"stable": {}, "canary": {}})
    stub.reply("GET", f"{base}/canary_1/health", 200, {"overall_status": "unknown"})
    client = SerinClient(stub.url, api_key="k")

    assert client.create_deployment(
        "emails", "1.0", "1.1", percentage=20, sticky_routing=True, profile=None
    ) == DEPLOYMENT
    assert stub.last["body"] == {
        "queue_name": "emails",
        "stable_version": "1.0",
        "canary_version": "1.1",
        "percentage": 20,
        "sticky_routing": True,
    }
    assert client.get_deployment("canary_1")["id"] == "canary_1"
    assert client.set_percentage("canary_1", 50)["percentage"] == 50
    assert (stub.last["method"], stub.last["body"]) == ("PUT", {"percentage": 50})
    client.promote("canary_1")
    assert stub.last["path"] == f"{base}/canary_1/promote"
    client.rollback("canary_1", "too many errors")
    assert stub.last["body"] == {"reason": "too many errors"}
    client.rollback("canary_1")
    assert stub.last["body"] == {}
    assert client.deployment_metrics("canary_1") == {"stable": {}, "canary": {}}
    assert client.deployment_health("canary_1")["overall_status"] == "unknown"
    with pytest.raises(TypeError):
        client.set_percentage("canary_1", True)


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
