"""Signing in: only with this server's form (CSRF), and never redirected off the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from surefoot.web.auth import signin_csrf
from surefoot.web.console.login import local_path
from tests.e2e.console_support import PASSWORD, Console, serve_console
from tests.web.console.support import CSRF_IN_FORM, Browserless

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/runs?status=failed", "/runs?status=failed"),
        ("/reviews/abc", "/reviews/abc"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/runs\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_only_local_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert local_path(target) == expected


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with serve_console(f"sqlite:///{tmp_path / 'console.db'}") as running:
        yield running


def test_a_sign_in_without_the_forms_token_is_refused(console: Console) -> None:
    with httpx.Client(base_url=console.base_url, follow_redirects=False) as http:
        answer = http.post("/login", data={"username": "admin", "password": PASSWORD})
        # Refused: the form again (with a fresh token in the form and the cookie), no session.
        assert answer.status_code == 403
        assert "The sign-in form expired. Sign in again." in answer.text
        assert "surefoot_session" not in answer.headers.get("set-cookie", "")
        token = CSRF_IN_FORM.search(answer.text)
        assert token is not None
        assert http.cookies.get(signin_csrf.SIGNIN_COOKIE) == token.group(1)


def test_the_sign_in_forms_cookie_is_httponly_strict_and_short_lived(console: Console) -> None:
    with httpx.Client(base_url=console.base_url) as http:
        form = http.get("/login")
    cookie = form.headers["set-cookie"]
    token = CSRF_IN_FORM.search(form.text)
    assert token is not None
    assert cookie.startswith(f"{signin_csrf.SIGNIN_COOKIE}={token.group(1)};")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/login", "max-age=1800"} <= attributes
    assert "secure" not in attributes  # SUREFOOT_WEB_SECURE_COOKIES is off here


def test_a_sign_in_clears_the_forms_cookie(console: Console) -> None:
    with Browserless(console.base_url) as client:
        client.get("/login")
        answer = client.post("/login", {"username": "admin", "password": PASSWORD, "next": "/"})
        assert answer.status_code == 303
        assert client.http.cookies.get(signin_csrf.SIGNIN_COOKIE) is None
        assert client.http.cookies.get("surefoot_session")


def test_a_wrong_password_gets_the_form_again_and_no_session(console: Console) -> None:
    with Browserless(console.base_url) as client:
        client.get("/login?next=/queues")
        answer = client.post("/login", {"username": "admin", "password": "nope", "next": "/queues"})
        assert answer.status_code == 401
        assert "Unknown user or wrong password." in answer.text
        assert 'name="next" value="/queues"' in answer.text
        assert "surefoot_session" not in answer.headers.get("set-cookie", "")
        answer = client.post(
            "/login", {"username": "admin", "password": PASSWORD, "next": "/queues"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/queues"
