"""Fixtures of the web tests: an app with workers on a fresh SQLite file, the API over
it served by uvicorn on a loopback port (real HTTP), and tokens of every role."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.domain.access import Role
from surefoot.engine.runtime import utc_now
from surefoot.web.app import create_app
from surefoot.web.auth import tokens
from tests.web import flows
from tests.web.oidc_provider import Provider


@pytest.fixture
def app(make_app: Callable[..., sf.App]) -> sf.App:
    return flows.declare(make_app("web"))


@pytest.fixture
def worker(app: sf.App, start_worker: Callable[..., sf.Worker]) -> sf.Worker:
    return start_worker(app)


@pytest.fixture
def settings() -> WebSettings:
    return WebSettings()


@pytest.fixture
def api(app: sf.App, settings: WebSettings) -> FastAPI:
    return create_app(app, settings)


@pytest.fixture
def token_of(app: sf.App) -> Callable[[Role], str]:
    """A new API token secret of that role (one per role, made on first use)."""
    made: dict[Role, str] = {}

    def make(role: Role) -> str:
        if role not in made:
            made[role], _ = tokens.create_token(
                app.store, f"{role.value}-bot", role, actor="test", now=utc_now()
            )
        return made[role]

    return make


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class LiveServer:
    url: str


@contextmanager
def serving(asgi: Any, name: str = "uvicorn-test") -> Iterator[LiveServer]:
    """``asgi`` served by uvicorn on 127.0.0.1 (a free port), in a thread, until exit."""
    config = uvicorn.Config(asgi, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def provider() -> Iterator[Provider]:
    """The loopback OIDC provider (:mod:`tests.web.oidc_provider`), serving."""
    provider = Provider()
    with serving(provider.app(), "oidc-provider") as live:
        provider.url = live.url
        yield provider


@pytest.fixture
def live_server(api: FastAPI) -> Iterator[LiveServer]:
    """The API served by uvicorn on 127.0.0.1 (a free port), in a thread."""
    with serving(api) as live:
        yield live


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client of the live server, with no credentials."""
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        yield http


@pytest.fixture
def admin(client: httpx.Client, token_of: Callable[[Role], str]) -> httpx.Client:
    client.headers.update(bearer(token_of(Role.ADMIN)))
    return client


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
