"""The release manager against the real server (marker: ``server``): users log
in, a release is deployed through environments, approvals need people, and
notes come back in Markdown."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from serin_client import AuthError, ConflictError, SerinClient

pytestmark = pytest.mark.server

Namer = Callable[[str], str]


def settled(client: SerinClient, deployment_id: str, timeout: float = 30.0) -> dict:
    """Polls seed 003's view until the deployment succeeds or fails."""
    deadline = time.monotonic() + timeout
    while True:
        d = client.release_deployment(deployment_id)
        if d["status"] in ("succeeded", "failed", "rolled_back"):
            return d
        assert time.monotonic() < deadline, d
        time.sleep(0.2)


def test_login_deploy_approve_and_notes(client: SerinClient, serin_url: str, unique_name: Namer) -> None:
    product = unique_name("shop")
    author, reviewer = f"{unique_name('ada')}@example.com", f"{unique_name('bob')}@example.com"
    client.create_user(author, "Ada", "engineer", "correct horse")
    client.create_user(reviewer, "Bob", "engineer", "correct horse")

    ada = SerinClient(base_url=serin_url, timeout=30.0)
    session = ada.login(author, "correct horse")
    assert session["token"].startswith("srs_") and session["user"]["role"] == "engineer"
    assert ada.me()["kind"] == "user"
    ada.create_product(product)
    release = ada.create_release(product, "1.0.0", description="First version.")
    assert [e["name"] for e in ada.environments(product)] == ["development", "staging", "production"]

    with pytest.raises(ConflictError) as refused:
        ada.deploy(release, "staging")
    assert refused.value.code == "PREVIOUS_ENVIRONMENT_NOT_PASSED"
    for env in ("development", "staging"):
        assert settled(ada, ada.deploy(release, env)["id"])["status"] == "succeeded"

    # Production waits for two people other than the author.
    pending = ada.deploy(release, "production")
    assert pending["status"] == "pending"
    with pytest.raises(AuthError) as self_approval:
        ada.approve(release, "production")
    assert self_approval.value.code == "SELF_APPROVAL"
    bob = SerinClient(base_url=serin_url, timeout=30.0)
    bob.login(reviewer, "correct horse")
    assert bob.approve(release, "production", "ok")["tally"]["met"] is False
    admin_user = f"{unique_name('cy')}@example.com"
    client.create_user(admin_user, "Cy", "admin", "correct horse")
    cy = SerinClient(base_url=serin_url, timeout=30.0)
    cy.login(admin_user, "correct horse")
    assert cy.approve(release, "production")["tally"]["met"] is True
    assert settled(ada, pending["id"])["status"] == "succeeded"

    notes = ada.release_notes(release, "production")
    assert notes.startswith(f"# {product} 1.0.0") and "First version." in notes
    ada.logout()
    with pytest.raises(AuthError):
        ada.me()
