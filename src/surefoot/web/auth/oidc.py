"""OIDC sign-in (Entra ID or any standard provider): authorization code flow with PKCE.

``GET /auth/oidc/login?next=/path`` sends the browser to the provider with a fresh
``state``, ``nonce`` and PKCE challenge (S256). The sign-in in progress (state, nonce, PKCE
verifier, where to go next, when it expires) is kept by the browser, not the server: in a
sealed cookie (:mod:`surefoot.web.auth.sealed`; HttpOnly, SameSite=Lax, path
``/auth/oidc``, 10 minutes, Secure with ``secure_cookies``) under a key derived from the
client secret, which every server has. So the callback may reach any server; it is only
accepted in the browser that started the sign-in, with the same ``state``, once (every
callback clears the cookie), and nobody can forge or alter the cookie or read the nonce
and verifier in it.
``GET /auth/oidc/callback`` exchanges the code (with the PKCE verifier and the client
secret), validates the id_token against the issuer's JWKS (signature, ``iss``, ``aud``,
``exp``, ``nonce``), maps it to a local user by ``preferred_username`` (else ``email``),
creating one with ``oidc_default_role`` if absent, and opens a console session exactly
as a password sign-in does. A disabled local user is refused.

The protocol pieces come from authlib (grant URI, PKCE); the id_token is checked with
joserfc, authlib's JOSE library.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from fastapi import APIRouter, Request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from surefoot.config import WebSettings
from surefoot.domain.access import UserRecord
from surefoot.errors import AuthenticationError, ConfigError, SurefootError
from surefoot.store.base import Store
from surefoot.web import errors
from surefoot.web.auth import sealed, sessions
from surefoot.web.auth.deps import now_of, surefoot_app, web_settings

log = logging.getLogger("surefoot.web.oidc")

PENDING_COOKIE = "surefoot_oidc_pending"
PENDING_S = 600  # a sign-in must come back from the provider within this
MAX_NEXT = 1000  # a longer ``next`` path is dropped (for "/"): a cookie holds about 4 KB
METADATA_S = 3600.0  # discovery document and JWKS are cached this long
HTTP_TIMEOUT_S = 10.0

router = APIRouter(prefix="/auth/oidc", include_in_schema=False)


def enabled(settings: WebSettings) -> bool:
    """Whether OIDC sign-in is configured (issuer, client id and secret all set); the
    console shows its button only then."""
    return bool(settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret)


@dataclass(frozen=True)
class _Pending:
    """A sign-in in progress, as its sealed cookie holds it."""

    state: str
    nonce: str
    verifier: str
    next_path: str
    expires_at: int  # seconds since the epoch, by the server's clock

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> _Pending | None:
        try:
            pending = cls(**payload)
        except TypeError:
            return None
        texts = (pending.state, pending.nonce, pending.verifier, pending.next_path)
        if not all(isinstance(text, str) for text in texts):
            return None
        if not isinstance(pending.expires_at, int) or isinstance(pending.expires_at, bool):
            return None
        return pending


def pending_key(settings: WebSettings) -> OctKey:
    """The key of the pending-sign-in cookie: from the client secret (every server has
    it), bound to the issuer and client id."""
    issuer, client_id = settings.oidc_issuer, settings.oidc_client_id
    purpose = f"surefoot oidc pending sign-in v1\n{issuer}\n{client_id}"
    return sealed.derive_key(settings.oidc_client_secret or "", purpose)


class _Provider:
    """The provider's metadata and keys, cached by each server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None

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
    if len(path) > MAX_NEXT:
        return "/"
    return path


@router.get("/login", name="oidc_login")
def login(request: Request, next: str | None = None) -> RedirectResponse:
    settings, issuer, client_id, _secret = _configured(request)
    provider = _provider(request)
    metadata = provider.metadata(issuer)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    expires_at = int(now_of(request).timestamp()) + PENDING_S
    pending = _Pending(state, nonce, verifier, _safe_next(next), expires_at)
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
        PENDING_COOKIE,
        sealed.seal(pending_key(settings), asdict(pending)),
        max_age=PENDING_S,
        path="/auth/oidc",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.get("/callback", name="oidc_callback")
async def callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    """Finish the sign-in; whatever the outcome, the pending sign-in's cookie is cleared,
    so a callback is accepted once."""
    response: Response
    try:
        response = await run_in_threadpool(_finish, request, code, state, error)
    except SurefootError as exc:
        response = await errors.surefoot_error(request, exc)
    response.delete_cookie(
        PENDING_COOKIE,
        path="/auth/oidc",
        httponly=True,
        samesite="lax",
        secure=web_settings(request).secure_cookies,
    )
    return response


def _take_pending(request: Request, settings: WebSettings, state: str | None) -> _Pending:
    """The sign-in this browser started and the callback's ``state`` names, or refused."""
    value = request.cookies.get(PENDING_COOKIE)
    if not value:
        raise AuthenticationError(
            "this sign-in was not started in this browser, or was already used; start again"
        )
    payload = sealed.open_sealed(pending_key(settings), value)
    pending = _Pending.from_payload(payload) if payload is not None else None
    if pending is None:
        log.warning(
            "OIDC sign-in refused: its cookie was not sealed with this server's key (altered, "
            "or the servers do not share one SUREFOOT_WEB_OIDC_CLIENT_SECRET)"
        )
        raise AuthenticationError("this sign-in's cookie is not valid; start again")
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise AuthenticationError("this sign-in was not started in this browser; start again")
    if now_of(request).timestamp() > pending.expires_at:
        raise AuthenticationError("this sign-in expired; start again")
    return pending


def _finish(
    request: Request, code: str | None, state: str | None, error: str | None
) -> RedirectResponse:
    settings, issuer, client_id, client_secret = _configured(request)
    if error is not None:
        raise AuthenticationError(f"the sign-in provider refused: {error[:100]}")
    pending = _take_pending(request, settings, state)
    if not code:
        raise AuthenticationError("the sign-in provider sent no code; start again")
    provider = _provider(request)
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
