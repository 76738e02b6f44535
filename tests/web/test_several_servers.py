"""Sign-in with two servers on one store behind a load balancer without affinity.

Two ``create_app`` instances, each over its own ``App`` (its own store connections) on one
store (a SQLite file, and PostgreSQL when there is a server), served by uvicorn on loopback.
A test balancer sends each request of the browser to the next server in turn, as a round
robin without sticky sessions does, and records which server answered: the sign-in form
comes from one and is posted to the other, an OIDC sign-in starts on one and comes back
to the other. Nothing a sign-in needs may live in one server process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.domain.access import Role
from surefoot.engine.runtime import utc_now
from surefoot.web.app import create_app
from surefoot.web.auth import oidc, sealed, signin_csrf, users
from surefoot.web.auth.sessions import SESSION_COOKIE
from tests import postgres_support
from tests.web import flows
from tests.web.conftest import LiveServer, serving
from tests.web.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

postgres_server = postgres_support.postgres_server
postgres_url = postgres_support.postgres_url

PUBLIC_URL = "http://surefoot.test"  # the balancer's address, as browsers know it
PASSWORD = "correct horse battery"
CSRF_IN_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


class Balancer(httpx.BaseTransport):
    """A load balancer without session affinity: each request goes to the next server in
    turn, with the browser's Host header as it was; ``served_by`` says which answered."""

    def __init__(self, servers: list[LiveServer]) -> None:
        self.backends = [httpx.URL(server.url) for server in servers]
        self.served_by: list[int] = []
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        index = len(self.served_by) % len(self.backends)
        self.served_by.append(index)
        backend = self.backends[index]
        forwarded = httpx.Request(
            request.method,
            request.url.copy_with(scheme=backend.scheme, host=backend.host, port=backend.port),
            headers=request.headers,
            stream=request.stream,
        )
        return self._inner.handle_request(forwarded)

    def close(self) -> None:
        self._inner.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, store_url: str) -> str:
    """The one store both servers use."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return store_url


@pytest.fixture
def settings(provider: Provider) -> WebSettings:
    return WebSettings(
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_default_role=Role.REVIEWER,
        public_url=PUBLIC_URL,
    )


@pytest.fixture
def apis(make_app: Callable[..., sf.App], settings: WebSettings) -> list[FastAPI]:
    """The two servers' web apps, each over its own ``App`` on the one store."""
    return [create_app(flows.declare(make_app("web")), settings) for _ in range(2)]


@pytest.fixture
def balancer(apis: list[FastAPI]) -> Iterator[Balancer]:
    with serving(apis[0], "server-0") as first, serving(apis[1], "server-1") as second:
        balancer = Balancer([first, second])
        yield balancer
        balancer.close()


@pytest.fixture
def browser(balancer: Balancer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=PUBLIC_URL, transport=balancer, timeout=10) as http:
        yield http


@pytest.fixture
def ann(apis: list[FastAPI]) -> str:
    store = apis[0].state.surefoot.store
    users.add_user(store, "ann", PASSWORD, Role.OPERATOR, actor="test", now=utc_now())
    return "ann"


def sign_in_form(browser: httpx.Client) -> str:
    """GET /login: the form's CSRF token."""
    form = browser.get("/login", params={"next": "/runs"})
    assert form.status_code == 200
    found = CSRF_IN_FORM.search(form.text)
    assert found is not None
    return found.group(1)


def test_a_password_sign_in_whose_form_came_from_another_server_succeeds(
    browser: httpx.Client, balancer: Balancer, ann: str
):
    token = sign_in_form(browser)
    posted = browser.post(
        "/login",
        data={"csrf_token": token, "username": ann, "password": PASSWORD, "next": "/runs"},
    )
    assert balancer.served_by == [0, 1]  # the form from one server, its POST to the other
    assert (posted.status_code, posted.headers["location"]) == (303, "/runs")
    assert browser.cookies.get(SESSION_COOKIE)
    for _ in range(2):  # the session works on both servers
        me = browser.get("/api/v1/me")
        assert (me.status_code, me.json()["name"], me.json()["via"]) == (200, ann, "session")
    assert balancer.served_by == [0, 1, 0, 1]


@pytest.mark.parametrize("missing", ["cookie", "field", "both", "mismatch"])
def test_a_sign_in_post_without_the_matching_cookie_and_field_is_refused(
    browser: httpx.Client, balancer: Balancer, ann: str, missing: str
):
    token = sign_in_form(browser)
    form = {"csrf_token": token, "username": ann, "password": PASSWORD, "next": "/runs"}
    if missing in ("cookie", "both"):
        browser.cookies.delete(signin_csrf.SIGNIN_COOKIE)
    if missing in ("field", "both"):
        del form["csrf_token"]
    if missing == "mismatch":  # a token of another browser's form
        with httpx.Client(base_url=PUBLIC_URL, transport=balancer) as other:
            form["csrf_token"] = sign_in_form(other)
    refused = browser.post("/login", data=form)
    assert refused.status_code == 403
    assert "The sign-in form expired. Sign in again." in refused.text
    assert not browser.cookies.get(SESSION_COOKIE)
    assert browser.get("/api/v1/me").status_code == 401


def start_oidc_sign_in(browser: httpx.Client, next_path: str = "/runs") -> str:
    """Our redirect to the provider, and its approval: the callback URL it sends back."""
    started = browser.get("/auth/oidc/login", params={"next": next_path})
    assert started.status_code == 303
    approved = httpx.get(started.headers["location"])
    assert approved.status_code == 302
    callback: str = approved.headers["location"]
    assert callback.startswith(f"{PUBLIC_URL}/auth/oidc/callback?")
    return callback


def test_an_oidc_sign_in_started_on_one_server_finishes_on_the_other(
    browser: httpx.Client, balancer: Balancer, apis: list[FastAPI]
):
    callback = start_oidc_sign_in(browser, "/runs?status=failed")
    finished = browser.get(callback)
    assert balancer.served_by == [0, 1]
    assert (finished.status_code, finished.headers["location"]) == (303, "/runs?status=failed")
    assert browser.cookies.get(oidc.PENDING_COOKIE) is None  # used up
    for _ in range(2):
        me = browser.get("/api/v1/me").json()
        assert (me["name"], me["role"], me["via"]) == ("oidc-ann", "reviewer", "session")
    assert apis[1].state.surefoot.store.get_user("oidc-ann") is not None


def _refused(answer: httpx.Response, message: str) -> None:
    assert answer.status_code == 401
    assert message in answer.json()["error"]["message"]
    assert SESSION_COOKIE not in answer.cookies


def test_an_altered_pending_oidc_cookie_is_refused(browser: httpx.Client, provider: Provider):
    callback = start_oidc_sign_in(browser)
    value = browser.cookies.get(oidc.PENDING_COOKIE)
    assert value
    header, key, iv, ciphertext, tag = value.split(".")
    flipped = ciphertext[:5] + ("A" if ciphertext[5] != "A" else "B") + ciphertext[6:]
    for altered in (
        f"{header}.{key}.{iv}.{flipped}.{tag}",
        f"{header}.{key}.{iv}.{ciphertext}.{tag[::-1]}",
        f"{header}.{key}.{iv[::-1]}.{ciphertext}.{tag}",
        value[:-8],
        "not-a-sealed-value",
    ):
        browser.cookies.set(oidc.PENDING_COOKIE, altered, domain="surefoot.test", path="/auth/oidc")
        _refused(browser.get(callback), "cookie is not valid")
    assert provider.token_requests == 0


def test_a_pending_oidc_cookie_forged_without_the_servers_key_is_refused(
    browser: httpx.Client, provider: Provider, settings: WebSettings
):
    callback = start_oidc_sign_in(browser)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    # What a client can make: the right state and values of its choosing, sealed under a
    # key of its own (it does not know the client secret).
    forged_key = oidc.pending_key(replace(settings, oidc_client_secret="a guessed secret"))
    pending = {
        "state": state,
        "nonce": "chosen-nonce",
        "verifier": "chosen-verifier",
        "next_path": "/",
        "expires_at": int((utc_now() + timedelta(minutes=5)).timestamp()),
    }
    browser.cookies.set(
        oidc.PENDING_COOKIE,
        sealed.seal(forged_key, pending),
        domain="surefoot.test",
        path="/auth/oidc",
    )
    _refused(browser.get(callback), "cookie is not valid")
    assert provider.token_requests == 0


def test_a_pending_oidc_cookie_of_another_sign_in_is_refused(
    browser: httpx.Client, provider: Provider
):
    first = start_oidc_sign_in(browser)
    start_oidc_sign_in(browser)  # the cookie now holds the second sign-in
    _refused(browser.get(first), "not started in this browser")
    assert provider.token_requests == 0


def test_a_replayed_oidc_callback_is_refused_on_every_server(
    browser: httpx.Client, balancer: Balancer, provider: Provider
):
    callback = start_oidc_sign_in(browser)
    pending = browser.cookies.get(oidc.PENDING_COOKIE)
    assert pending
    assert browser.get(callback).status_code == 303  # server 1
    browser.cookies.delete(SESSION_COOKIE)
    for _ in range(2):  # servers 0 and 1: the cookie is gone
        _refused(browser.get(callback), "already used")
    assert balancer.served_by == [0, 1, 0, 1]
    assert provider.token_requests == 1
    # A copy of the cookie sent again: the provider does not take the spent code twice.
    browser.cookies.set(oidc.PENDING_COOKIE, pending, domain="surefoot.test", path="/auth/oidc")
    _refused(browser.get(callback), "did not issue tokens")
    assert browser.cookies.get(oidc.PENDING_COOKIE) is None


def test_a_pending_oidc_sign_in_expires_after_ten_minutes(
    browser: httpx.Client, apis: list[FastAPI], provider: Provider
):
    callback = start_oidc_sign_in(browser)  # started on server 0
    later = utc_now() + timedelta(seconds=oidc.PENDING_S + 5)
    apis[1].state.clock = lambda: later
    _refused(browser.get(callback), "expired")
    assert provider.token_requests == 0


def test_servers_with_different_client_secrets_refuse_each_others_sign_ins(
    browser: httpx.Client, apis: list[FastAPI], settings: WebSettings
):
    apis[1].state.web_settings = replace(settings, oidc_client_secret="another secret")
    _refused(browser.get(start_oidc_sign_in(browser)), "cookie is not valid")
