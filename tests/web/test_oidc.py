"""OIDC sign-in against a provider running on loopback (real HTTP both ways): the code
flow with PKCE, state and nonce; the id_token checked against the issuer's keys; the
local user created with the default role; every forged or mismatched step refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from joserfc.jwk import RSAKey

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.domain.access import Role
from surefoot.engine.runtime import utc_now
from surefoot.web.auth import oidc
from surefoot.web.auth.sessions import SESSION_COOKIE
from tests.web.conftest import LiveServer
from tests.web.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider


@pytest.fixture
def provider() -> Iterator[Provider]:
    provider = Provider()
    server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="oidc-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the provider did not start"
        time.sleep(0.01)
    provider.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    yield provider
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def settings(provider: Provider) -> WebSettings:
    return WebSettings(
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_default_role=Role.REVIEWER,
    )


def start_sign_in(client: httpx.Client, next_path: str = "/runs") -> str:
    """Our login redirect, then the provider's approval: the callback URL it sends back."""
    started = client.get("/auth/oidc/login", params={"next": next_path})
    assert started.status_code == 303
    approved = httpx.get(started.headers["location"])
    assert approved.status_code == 302
    callback: str = approved.headers["location"]
    assert callback.startswith(str(client.base_url).rstrip("/") + "/auth/oidc/callback?")
    return callback


def test_the_code_flow_signs_in_and_creates_the_user_with_the_default_role(
    client: httpx.Client, app: sf.App, live_server: LiveServer
):
    finished = client.get(start_sign_in(client, "/runs?status=failed"))
    assert finished.status_code == 303
    assert finished.headers["location"] == "/runs?status=failed"
    assert client.cookies.get(SESSION_COOKIE)
    me = client.get("/api/v1/me").json()
    assert (me["name"], me["role"], me["via"]) == ("oidc-ann", "reviewer", "session")
    user = app.store.get_user("oidc-ann")
    assert user is not None
    assert user.password_hash is None
    assert [e.actor for e in app.store.audit_entries(after_seq=0, limit=10)] == ["oidc"]


def test_a_callback_from_another_browser_is_refused(client: httpx.Client):
    callback = start_sign_in(client)
    with httpx.Client() as other_browser:
        refused = other_browser.get(callback)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_required"
    assert SESSION_COOKIE not in refused.cookies


def test_a_callback_is_accepted_once(client: httpx.Client, provider: Provider):
    callback = start_sign_in(client)
    assert client.get(callback).status_code == 303
    client.cookies.delete(SESSION_COOKIE)
    client.cookies.set(oidc.STATE_COOKIE, callback.split("state=")[1], path="/auth/oidc")
    assert client.get(callback).status_code == 401
    assert provider.token_requests == 1


@pytest.mark.parametrize(
    "forged",
    [
        {"aud": "another-client"},
        {"iss": "https://elsewhere.example"},
        {"nonce": "replayed-nonce"},
        {"exp": int(time.time()) - 60},
    ],
    ids=["audience", "issuer", "nonce", "expired"],
)
def test_an_id_token_that_does_not_hold_is_refused(
    client: httpx.Client, provider: Provider, app: sf.App, forged: dict[str, object]
):
    provider.claims = forged
    refused = client.get(start_sign_in(client))
    assert refused.status_code == 401
    assert not client.cookies.get(SESSION_COOKIE)
    assert app.store.get_user("oidc-ann") is None


def test_an_id_token_signed_by_another_key_is_refused(
    client: httpx.Client, provider: Provider, app: sf.App
):
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    refused = client.get(start_sign_in(client))
    assert refused.status_code == 401
    assert app.store.get_user("oidc-ann") is None


def test_a_disabled_local_user_is_refused(client: httpx.Client, app: sf.App):
    app.store.create_user("oidc-ann", None, Role.ADMIN, actor="test", now=utc_now())
    app.store.update_user("oidc-ann", disabled=True, actor="test", now=utc_now())
    assert client.get(start_sign_in(client)).status_code == 401


def test_next_never_leaves_the_site(client: httpx.Client):
    finished = client.get(start_sign_in(client, "//evil.example/steal"))
    assert finished.headers["location"] == "/"


@pytest.mark.parametrize("settings", [WebSettings()])
def test_without_configuration_oidc_is_off(client: httpx.Client, settings: WebSettings):
    assert not oidc.enabled(settings)
    answer = client.get("/auth/oidc/login")
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
