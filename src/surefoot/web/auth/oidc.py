"""OIDC sign-in (Entra ID or any standard provider): authorization code flow with PKCE.

``GET /auth/oidc/login?next=/path`` sends the browser to the provider with a fresh
``state``, ``nonce`` and PKCE challenge (S256); the state is also set in a short-lived
cookie, so a callback is only accepted in the browser that started it.
``GET /auth/oidc/callback`` exchanges the code (with the PKCE verifier and the client
secret), validates the id_token against the issuer's JWKS (signature, ``iss``, ``aud``,
``exp``, ``nonce``), maps it to a local user by ``preferred_username`` (else ``email``),
creating one with ``oidc_default_role`` if absent, and opens a console session exactly
as a password sign-in does. A disabled local user is refused.

The protocol pieces come from authlib (grant URI, PKCE); the id_token is checked with
joserfc, authlib's JOSE library.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from fastapi import APIRouter, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.responses import RedirectResponse

from surefoot.config import WebSettings
from surefoot.domain.access import UserRecord
from surefoot.errors import AuthenticationError, ConfigError
from surefoot.store.base import Store
from surefoot.web.auth import sessions
from surefoot.web.auth.deps import now_of, surefoot_app, web_settings

log = logging.getLogger("surefoot.web.oidc")

STATE_COOKIE = "surefoot_oidc_state"
PENDING_S = 600.0  # a sign-in must come back from the provider within this
METADATA_S = 3600.0  # discovery document and JWKS are cached this long
HTTP_TIMEOUT_S = 10.0

router = APIRouter(prefix="/auth/oidc", include_in_schema=False)


def enabled(settings: WebSettings) -> bool:
    """Whether OIDC sign-in is configured (issuer, client id and secret all set); the
    console shows its button only then."""
    return bool(settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret)


@dataclass(frozen=True)
class _Pending:
    nonce: str
    verifier: str
    next_path: str
    started: float


class _Provider:
    """The provider's metadata and keys (cached), and sign-ins in flight (this process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._pending: dict[str, _Pending] = {}

    def metadata(self, issuer: str) -> dict[str, Any]:
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata[0] < METADATA_S:
                return self._metadata[1]
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document: dict[str, Any] = _get_json(url)
        if document.get("issuer") != issuer:
            raise AuthenticationError("the OIDC discovery document names another issuer")
        with self._lock:
            self._metadata = (time.monotonic(), document)
        return document

    def keys(self, jwks_uri: str, *, refresh: bool = False) -> KeySet:
        with self._lock:
            if not refresh and self._keys and time.monotonic() - self._keys[0] < METADATA_S:
                return self._keys[1]
        key_set = KeySet.import_key_set(cast(Any, _get_json(jwks_uri)))
        with self._lock:
            self._keys = (time.monotonic(), key_set)
        return key_set

    def remember(self, state: str, pending: _Pending) -> None:
        with self._lock:
            now = time.monotonic()
            for old in [s for s, p in self._pending.items() if now - p.started > PENDING_S]:
                del self._pending[old]
            self._pending[state] = pending

    def take(self, state: str) -> _Pending | None:
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.started > PENDING_S:
            return None
        return pending


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_S)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("OIDC provider request to %s failed: %s", url, exc)
        raise AuthenticationError("the sign-in provider could not be reached") from exc
    return data


def _provider(request: Request) -> _Provider:
    state = request.app.state
    if not hasattr(state, "oidc_provider"):
        state.oidc_provider = _Provider()
    provider: _Provider = state.oidc_provider
    return provider


def _configured(request: Request) -> tuple[WebSettings, str, str, str]:
    settings = web_settings(request)
    issuer, client_id, secret = (
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret,
    )
    if not (issuer and client_id and secret):
        raise ConfigError("OIDC sign-in is not configured on this server")
    return settings, issuer, client_id, secret


def _redirect_uri(request: Request, settings: WebSettings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/auth/oidc/callback"
    return str(request.url_for("oidc_callback"))


def _safe_next(path: str | None) -> str:
    """Only a local path: never another site (an open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


@router.get("/login", name="oidc_login")
def login(request: Request, next: str | None = None) -> RedirectResponse:
    settings, issuer, client_id, _secret = _configured(request)
    provider = _provider(request)
    metadata = provider.metadata(issuer)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    provider.remember(state, _Pending(nonce, verifier, _safe_next(next), time.monotonic()))
    target: str = prepare_grant_uri(
        metadata["authorization_endpoint"],
        client_id,
        "code",
        redirect_uri=_redirect_uri(request, settings),
        scope="openid profile email",
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(PENDING_S),
        path="/auth/oidc",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.get("/callback", name="oidc_callback")
def callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> RedirectResponse:
    settings, issuer, client_id, client_secret = _configured(request)
    if error is not None:
        raise AuthenticationError(f"the sign-in provider refused: {error[:100]}")
    cookie_state = request.cookies.get(STATE_COOKIE)
    if not code or not state or not cookie_state or not secrets.compare_digest(state, cookie_state):
        raise AuthenticationError("this sign-in was not started in this browser; start again")
    provider = _provider(request)
    pending = provider.take(state)
    if pending is None:
        raise AuthenticationError("this sign-in expired or was already used; start again")
    metadata = provider.metadata(issuer)
    tokens = _exchange(
        metadata["token_endpoint"],
        code=code,
        verifier=pending.verifier,
        redirect_uri=_redirect_uri(request, settings),
        client_id=client_id,
        client_secret=client_secret,
    )
    claims = _validate_id_token(
        provider, metadata, tokens, issuer=issuer, client_id=client_id, nonce=pending.nonce
    )
    store = surefoot_app(request).store
    user = _local_user(store, claims, settings, now_of(request))
    new = sessions.start_session(
        store,
        user,
        settings=settings,
        now=now_of(request),
        previous=request.cookies.get(sessions.SESSION_COOKIE),
    )
    response = RedirectResponse(pending.next_path, status_code=303)
    sessions.set_session_cookie(response, new.cookie_value, settings)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    return response


def _exchange(
    token_endpoint: str,
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
    client_id: str,
    client_secret: str,
) -> dict[str, Any]:
    """The token request (client_secret_basic, with the PKCE verifier)."""
    try:
        response = httpx.post(
            token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(quote(client_id, safe=""), quote(client_secret, safe="")),
            headers={"Accept": "application/json"},
            timeout=HTTP_TIMEOUT_S,
        )
        response.raise_for_status()
        data: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("OIDC token request failed: %s", exc)
        raise AuthenticationError("the sign-in provider did not issue tokens") from exc
    return data


def _validate_id_token(
    provider: _Provider,
    metadata: dict[str, Any],
    tokens: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
) -> dict[str, Any]:
    raw = tokens.get("id_token")
    if not isinstance(raw, str):
        raise AuthenticationError("the sign-in provider sent no id_token")
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        try:
            decoded = jwt.decode(raw, provider.keys(metadata["jwks_uri"]))
        except JoseError:  # the provider may have rotated its keys
            decoded = jwt.decode(raw, provider.keys(metadata["jwks_uri"], refresh=True))
        registry.validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        log.warning("OIDC id_token refused: %s", exc)
        raise AuthenticationError("the id_token from the sign-in provider is not valid") from exc
    claims: dict[str, Any] = decoded.claims
    return claims


def _local_user(
    store: Store, claims: dict[str, Any], settings: WebSettings, now: datetime
) -> UserRecord:
    name = claims.get("preferred_username") or claims.get("email")
    if not isinstance(name, str) or not name:
        raise AuthenticationError("the id_token names no preferred_username or email")
    user = store.get_user(name)
    if user is None:
        user = store.create_user(name, None, settings.oidc_default_role, actor="oidc", now=now)
    if user.disabled:
        raise AuthenticationError("unknown user or wrong password")
    return user
