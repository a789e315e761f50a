"""Integration tests against the real Serin server binary (marker: ``server``)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable, List

import pytest

import serin_client.client
from serin_client import (
    AuthError,
    CanaryPyClient,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    Release,
    SerinClient,
    SerinError,
    Signal,
    SignalInput,
    ValidationError,
)

from conftest import ADMIN_KEY

pytestmark = pytest.mark.server

Namer = Callable[[str], str]


def released(client: SerinClient, product: str, version: str) -> Release:
    """Create a release and walk it through draft -> approved -> released."""
    created = client.create_release(product, version)
    client.approve_release(created.id)
    return client.release(created.id)


def test_health(client: SerinClient) -> None:
    health = client.health()
    assert health.status == "ok"
    assert health.ok
    assert health.version


def test_create_product_and_duplicate(client: SerinClient, unique_name: Namer) -> None:
    name = unique_name("web")
    product = client.create_product(name, description="the web frontend")
    assert product.name == name
    assert product.description == "the web frontend"
    assert product.created_at.tzinfo is not None

    assert client.get_product(name) == product
    assert name in [p.name for p in client.list_products()]

    with pytest.raises(ConflictError) as info:
        client.create_product(name)
    assert info.value.status == 409
    assert info.value.code == "PRODUCT_EXISTS"
    assert info.value.message


def test_product_without_description(client: SerinClient, unique_name: Namer) -> None:
    product = client.create_product(unique_name("bare"))
    assert product.description is None


def test_release_lifecycle_and_latest_stable(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("web")
    client.create_product(product)

    draft = client.create_release(product, "1.2.0", description="first")
    assert draft.status == "draft"
    assert draft.product_name == product
    assert draft.version == "1.2.0"
    assert draft.description == "first"
    assert draft.released_at is None

    approved = client.approve_release(draft.id)
    assert approved.status == "approved"
    live = client.release(approved)
    assert live.status == "released"
    assert live.is_released
    assert live.released_at is not None and live.released_at.tzinfo is not None

    assert client.get_release(draft.id).status == "released"
    assert client.get_latest_stable_version(product) == "1.2.0"
    latest = client.get_latest_stable_release(product)
    assert latest.id == draft.id
    assert [r.version for r in client.list_releases(product)] == ["1.2.0"]


def test_duplicate_release(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("web")
    client.create_product(product)
    client.create_release(product, "1.0.0")
    with pytest.raises(ConflictError) as info:
        client.create_release(product, "1.0.0")
    assert info.value.code == "RELEASE_EXISTS"


def test_release_of_unknown_product(client: SerinClient, unique_name: Namer) -> None:
    with pytest.raises(NotFoundError) as info:
        client.create_release(unique_name("ghost"), "1.0.0")
    assert info.value.code == "PRODUCT_NOT_FOUND"


def test_latest_stable_uses_semver_order(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("semver")
    client.create_product(product)
    # 1.10.0 goes out first, so neither creation order nor release time nor
    # string comparison ("1.9.0" > "1.10.0") would pick it: only semver does.
    released(client, product, "1.10.0")
    released(client, product, "1.9.0")
    assert client.get_latest_stable_version(product) == "1.10.0"


def test_rolled_back_release_is_not_stable(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("rollback")
    client.create_product(product)
    released(client, product, "2.0.0")
    bad = released(client, product, "2.1.0")
    assert client.get_latest_stable_version(product) == "2.1.0"
    assert client.rollback_release(bad.id).status == "rolled_back"
    assert client.get_latest_stable_version(product) == "2.0.0"


def test_unknown_product(client: SerinClient, unique_name: Namer) -> None:
    name = unique_name("nope")
    with pytest.raises(NotFoundError) as info:
        client.get_latest_stable_version(name)
    assert info.value.status == 404
    assert info.value.code == "PRODUCT_NOT_FOUND"

    with pytest.raises(NotFoundError) as info:
        client.get_product(name)
    assert info.value.code == "PRODUCT_NOT_FOUND"


def test_product_without_stable_release(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("fresh")
    client.create_product(product)
    with pytest.raises(NotFoundError) as info:
        client.get_latest_stable_release(product)
    assert info.value.code == "NO_STABLE_RELEASE"

    # A draft and an approved release are not stable either.
    client.approve_release(client.create_release(product, "0.1.0"))
    client.create_release(product, "0.2.0")
    with pytest.raises(NotFoundError) as info:
        client.get_latest_stable_version(product)
    assert info.value.code == "NO_STABLE_RELEASE"


def test_illegal_status_transition(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("web")
    client.create_product(product)
    draft = client.create_release(product, "1.0.0")

    with pytest.raises(ConflictError) as info:
        client.release(draft.id)  # draft -> released skips approval
    assert info.value.code == "INVALID_STATUS_TRANSITION"
    assert client.get_release(draft.id).status == "draft"

    assert client.cancel_release(draft.id).status == "cancelled"
    with pytest.raises(ConflictError) as info:
        client.approve_release(draft.id)
    assert info.value.code == "INVALID_STATUS_TRANSITION"


def test_send_signal_to_canary(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("web")
    client.create_product(product)
    client.create_release(product, "1.0.0")
    at = datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=timezone.utc)

    signal = client.send_signal_to_canary(
        product, "1.0.0", "http_5xx", 3, kind="counter", tags={"region": "eu"}, timestamp=at
    )
    assert isinstance(signal, Signal)
    assert signal.lane == "canary"
    assert signal.product_name == product
    assert signal.version == "1.0.0"
    assert signal.name == "http_5xx"
    assert signal.kind == "counter"
    assert signal.value == 3.0
    assert signal.tags == {"region": "eu"}
    assert signal.timestamp == at

    default = client.send_signal_to_canary(product, "1.0.0", "cpu", 0.5)
    assert default.kind == "gauge"
    assert default.lane == "canary"
    assert default.timestamp.tzinfo is not None

    stable = client.send_signal(product, "1.0.0", "cpu", 0.25, lane="stable")
    assert stable.lane == "stable"
    assert stable.release_id == signal.release_id


def test_signal_for_unknown_release(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("web")
    client.create_product(product)
    with pytest.raises(NotFoundError) as info:
        client.send_signal_to_canary(product, "9.9.9", "cpu", 1.0)
    assert info.value.code == "RELEASE_NOT_FOUND"


def test_batch_of_500_signals(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("batch")
    client.create_product(product)
    client.create_release(product, "1.0.0")
    signals = [
        SignalInput(product, "1.0.0", "canary" if i % 2 else "stable", "latency_ms", float(i),
                    kind="latency", tags={"i": str(i)})
        for i in range(250)
    ] + [
        {"product_name": product, "version": "1.0.0", "lane": "canary",
         "name": "ok", "value": 1, "kind": "outcome",
         "timestamp": datetime.now(timezone.utc)}
        for _ in range(250)
    ]
    assert client.send_signals(signals) == 500


def test_batch_with_bad_lane_is_rejected(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("batch")
    client.create_product(product)
    client.create_release(product, "1.0.0")
    signals = [
        {"product_name": product, "version": "1.0.0", "lane": "canary", "name": "cpu", "value": 1}
        for _ in range(10)
    ]
    signals[5] = dict(signals[5], lane="sideways")

    with pytest.raises(ValidationError) as info:
        client.send_signals(signals)
    assert info.value.status in (400, 422)
    # The contract's JSON error body was sent (the fallback code is UNKNOWN_ERROR).
    assert info.value.code and info.value.code != "UNKNOWN_ERROR"
    # All-or-nothing: cannot be read back through the client yet.


def test_canary_py_client_alias(serin_url: str) -> None:
    assert CanaryPyClient is SerinClient
    assert CanaryPyClient(serin_url).health().status == "ok"


def test_every_error_carries_a_code(client: SerinClient) -> None:
    with pytest.raises(SerinError) as info:
        client.get_release(2**31 - 7)
    assert isinstance(info.value, NotFoundError)
    assert info.value.code and info.value.code != "UNKNOWN_ERROR"


@pytest.mark.server
def test_a_request_without_a_key_is_an_auth_error(serin_url: str) -> None:
    anonymous = SerinClient(base_url=serin_url)
    with pytest.raises(AuthError) as caught:
        anonymous.list_products()
    assert caught.value.status == 401
    assert caught.value.code == "UNAUTHORIZED"
    # Health stays public.
    assert anonymous.health().status == "ok"


def test_lists_follow_every_page(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("paged")
    client.create_product(product)
    versions = [f"1.0.{i}" for i in range(150)]  # two pages of 100
    for version in versions:
        client.create_release(product, version)
    releases = client.list_releases(product)
    assert len(releases) == 150
    assert {r.version for r in releases} == set(versions)
    assert [r.id for r in releases] == sorted((r.id for r in releases), reverse=True)  # newest first
    assert [r.version for r in client.iter_releases(product)] == [r.version for r in releases]

    names = [unique_name("zz-paged") for _ in range(3)]
    for name in names:
        client.create_product(name)
    listed = [p.name for p in client.list_products()]
    assert len(listed) == len(set(listed))
    assert set(names) <= set(listed)
    with pytest.raises(NotFoundError):
        client.list_releases(unique_name("ghost"))


def test_client_from_environment(serin_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERIN_URL", serin_url)
    monkeypatch.setenv("SERIN_API_KEY", ADMIN_KEY)
    client = SerinClient()
    assert client.base_url == serin_url
    assert client.me()["kind"] == "api_key"
    with pytest.raises(AuthError) as info:
        SerinClient(api_key="").list_products()  # explicit "no key" beats the environment
    assert info.value.status == 401


def test_keep_alive_against_the_server(client: SerinClient, unique_name: Namer) -> None:
    product = unique_name("ka")
    client.create_product(product)
    for i in range(20):
        client.create_release(product, f"0.{i}.0")
        client.get_product(product)
    with pytest.raises(NotFoundError):
        client.get_product(unique_name("ghost"))
    assert client._pool is not None and client._pool.connections_opened == 1

    # Many threads, one client: every call succeeds, connections stay few.
    errors: List[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert client.get_product(product).name == product
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert client._pool.connections_opened <= 5


def test_forbidden_for_a_viewer(client: SerinClient, serin_url: str, unique_name: Namer) -> None:
    email = f"{unique_name('viewer')}@example.com"
    client.create_user(email, "Vi", "viewer", "correct horse")
    viewer = SerinClient(serin_url, api_key="")
    viewer.login(email, "correct horse")
    viewer.list_products()  # reading is allowed
    with pytest.raises(ForbiddenError) as info:
        viewer.create_product(unique_name("nope"))
    assert isinstance(info.value, AuthError)
    assert (info.value.status, info.value.code) == (403, "FORBIDDEN")


def test_rate_limit_is_waited_out(rate_limited_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: List[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(serin_client.client, "_sleep", sleep)
    client = SerinClient(rate_limited_url, api_key=ADMIN_KEY, timeout=30.0)
    started = time.monotonic()
    for _ in range(3):  # one a second is allowed: the 2nd and 3rd wait
        client.list_products()
    assert time.monotonic() - started >= 1.5
    assert waits and all(w >= 1.0 for w in waits)

    impatient = SerinClient(rate_limited_url, api_key=ADMIN_KEY, max_retry_wait=0)
    calls = len(waits)
    with pytest.raises(RateLimitedError) as info:
        for _ in range(3):  # the bucket is empty: one of these is refused at once
            impatient.list_products()
    assert len(waits) == calls  # max_retry_wait=0: never waits
    err = info.value
    assert (err.status, err.code) == (429, "RATE_LIMITED")
    assert err.retry_after is not None and err.retry_after >= 1
