"""OIDC sign-in against a provider running on loopback (real HTTP both ways): the code
flow with PKCE, state and nonce; the id_token checked against the issuer's keys; the
local user created with the default role; every forged or mismatched step refused."""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
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
    pending = client.cookies.get(oidc.PENDING_COOKIE)
    assert pending
    assert client.get(callback).status_code == 303
    assert client.cookies.get(oidc.PENDING_COOKIE) is None  # the callback cleared it
    client.cookies.delete(SESSION_COOKIE)
    replayed = client.get(callback)
    assert replayed.status_code == 401
    assert "already used" in replayed.json()["error"]["message"]
    assert provider.token_requests == 1  # refused before the provider is asked
    # A copy of the cookie sent again: the provider refuses the spent code.
    client.cookies.set(oidc.PENDING_COOKIE, pending, domain=client.base_url.host, path="/auth/oidc")
    again = client.get(callback)
    assert again.status_code == 401
    assert SESSION_COOKIE not in again.cookies
    assert client.cookies.get(oidc.PENDING_COOKIE) is None


def test_a_failed_callback_clears_the_pending_sign_in_too(client: httpx.Client, provider: Provider):
    provider.claims = {"aud": "another-client"}
    refused = client.get(start_sign_in(client))
    assert refused.status_code == 401
    assert client.cookies.get(oidc.PENDING_COOKIE) is None


def test_the_pending_sign_in_cookie_is_httponly_lax_short_lived_and_opaque(
    client: httpx.Client,
):
    started = client.get("/auth/oidc/login")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    cookie = started.headers["set-cookie"]
    value = client.cookies.get(oidc.PENDING_COOKIE)
    assert value
    assert state not in value  # sealed: neither state, nonce nor verifier readable
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/auth/oidc", "max-age=600"} <= attributes


def test_with_secure_cookies_the_pending_sign_in_cookie_is_secure(
    api: FastAPI, client: httpx.Client, settings: WebSettings
):
    api.state.web_settings = dataclasses.replace(settings, secure_cookies=True)
    started = client.get("/auth/oidc/login")
    attributes = {part.strip().lower() for part in started.headers["set-cookie"].split(";")}
    assert "secure" in attributes


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
