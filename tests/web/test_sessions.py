"""Console sessions, CSRF and API tokens: timeouts, rotation, refusals.

Time is injected (``now=`` and ``api.state.clock``), so expiry is tested exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import Depends, FastAPI

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.domain.access import Permission, Principal, Role
from surefoot.errors import AuthenticationError
from surefoot.web.auth import sessions, tokens, users
from surefoot.web.auth.deps import csrf_token, verify_csrf

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
SETTINGS = WebSettings(session_idle_s=600, session_absolute_s=3600)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def ann(app: sf.App) -> str:
    users.add_user(app.store, "ann", PASSWORD, Role.OPERATOR, actor="test", now=T0)
    return "ann"


def alive(app: sf.App, cookie: str, at: datetime) -> bool:
    return sessions.resolve(app.store, cookie, settings=SETTINGS, now=at) is not None


def test_a_session_ends_after_being_idle_for_the_idle_timeout(app: sf.App, ann: str):
    new = sessions.sign_in(app.store, ann, PASSWORD, settings=SETTINGS, now=T0)
    assert new.principal == Principal("ann", Role.OPERATOR, "session")
    assert alive(app, new.cookie_value, later(500))  # use moves the idle window on
    assert alive(app, new.cookie_value, later(1050))
    assert not alive(app, new.cookie_value, later(1050 + 600))
    assert not alive(app, new.cookie_value, later(1050))  # deleted, not just skipped


def test_a_session_in_constant_use_still_ends_at_the_absolute_timeout(app: sf.App, ann: str):
    new = sessions.sign_in(app.store, ann, PASSWORD, settings=SETTINGS, now=T0)
    for minute in range(5, 60, 5):
        assert alive(app, new.cookie_value, later(minute * 60))
    assert not alive(app, new.cookie_value, later(3600))


def test_every_sign_in_makes_a_new_session_id_and_deletes_the_old(app: sf.App, ann: str):
    first = sessions.sign_in(app.store, ann, PASSWORD, settings=SETTINGS, now=T0)
    second = sessions.sign_in(
        app.store, ann, PASSWORD, settings=SETTINGS, now=later(1), previous=first.cookie_value
    )
    assert second.cookie_value != first.cookie_value
    assert second.csrf_token != first.csrf_token
    assert not alive(app, first.cookie_value, later(2))
    assert alive(app, second.cookie_value, later(2))


def test_unknown_users_wrong_passwords_and_disabled_users_get_the_same_refusal(
    app: sf.App, ann: str
):
    messages = set()
    for name, password in (("nobody", PASSWORD), (ann, "wrong password!")):
        with pytest.raises(AuthenticationError) as refused:
            sessions.sign_in(app.store, name, password, settings=SETTINGS, now=T0)
        messages.add(str(refused.value))
    signed_in = sessions.sign_in(app.store, ann, PASSWORD, settings=SETTINGS, now=T0)
    app.store.update_user(ann, disabled=True, actor="test", now=later(1))
    with pytest.raises(AuthenticationError) as disabled:
        sessions.sign_in(app.store, ann, PASSWORD, settings=SETTINGS, now=later(2))
    messages.add(str(disabled.value))
    assert len(messages) == 1
    assert not alive(app, signed_in.cookie_value, later(3))  # disabling ended the session


def test_sign_out_ends_the_session(app: sf.App, ann: str):
    new = sessions.sign_in(app.store, ann, PASSWORD, settings=SETTINGS, now=T0)
    sessions.sign_out(app.store, new.cookie_value)
    assert not alive(app, new.cookie_value, later(1))


@pytest.fixture
def form_api(api: FastAPI) -> FastAPI:
    """The app plus one form route of the kind the console has: CSRF-checked."""

    @api.post("/test-form", dependencies=[Depends(verify_csrf)])
    def accept() -> dict[str, bool]:
        return {"accepted": True}

    @api.get("/test-form-token")
    def token(value: str = Depends(csrf_token)) -> dict[str, str]:
        return {"csrf_token": value}

    api.state.clock = lambda: T0
    return api


@pytest.fixture
def browser(form_api: FastAPI, client: httpx.Client, app: sf.App, ann: str) -> httpx.Client:
    """A client holding ann's session cookie (as the console's sign-in would set it)."""
    new = sessions.sign_in(app.store, ann, PASSWORD, settings=form_api.state.web_settings, now=T0)
    client.cookies.set(sessions.SESSION_COOKIE, new.cookie_value)
    client.headers["X-Test-CSRF"] = new.csrf_token  # kept for the test, not sent as CSRF
    return client


def test_a_form_without_the_session_csrf_token_is_refused(browser: httpx.Client):
    expected = browser.get("/test-form-token").json()["csrf_token"]
    assert expected == browser.headers["X-Test-CSRF"]
    missing = browser.post("/test-form", data={"note": "x"})
    assert missing.status_code == 403
    assert "This form has expired" in missing.text  # a console page, not JSON
    wrong = browser.post("/test-form", data={"csrf_token": "forged"})
    assert wrong.status_code == 403
    assert browser.post("/test-form", data={"csrf_token": expected}).json() == {"accepted": True}
    by_header = browser.post("/test-form", headers={"X-CSRF-Token": expected})
    assert by_header.status_code == 200


def test_a_cookie_authenticated_api_change_needs_the_csrf_header(browser: httpx.Client):
    assert browser.get("/api/v1/me").json()["via"] == "session"
    body = {"workflow": "greet", "input": ["x"]}
    refused = browser.post("/api/v1/runs", json=body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    allowed = browser.post(
        "/api/v1/runs", json=body, headers={"X-CSRF-Token": browser.headers["X-Test-CSRF"]}
    )
    assert allowed.status_code == 201


def test_an_idle_session_cookie_is_refused_by_the_api(form_api: FastAPI, browser: httpx.Client):
    form_api.state.clock = lambda: T0 + timedelta(seconds=WebSettings().session_idle_s + 1)
    assert browser.get("/api/v1/me").status_code == 401


def test_revoked_and_expired_tokens_are_refused(api: FastAPI, client: httpx.Client, app: sf.App):
    api.state.clock = lambda: T0
    secret, record = tokens.create_token(
        app.store, "ci", Role.VIEWER, actor="test", now=T0, expires_days=1
    )
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    api.state.clock = lambda: T0 + timedelta(days=1)
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    api.state.clock = lambda: T0
    app.store.revoke_token(record.token_id, actor="test", now=T0)
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    for bad in ("Bearer sft_made-up", "Basic abc", "Bearer"):
        assert client.get("/api/v1/me", headers={"Authorization": bad}).status_code == 401


@pytest.mark.parametrize("settings", [WebSettings(insecure_no_auth=True)])
def test_with_auth_off_everyone_is_an_admin_and_every_response_warns(client: httpx.Client):
    me = client.get("/api/v1/me")
    assert me.json() == {
        "name": "anonymous",
        "role": "admin",
        "via": "no-auth",
        "permissions": sorted(p.value for p in Permission),
    }
    for response in (me, client.get("/api/v1/nowhere"), client.get("/openapi.json")):
        assert response.headers["X-Surefoot-Warning"] == "authentication is disabled"
