"""A small OIDC provider for the sign-in tests, served over real HTTP on loopback:
discovery document, JWKS, an authorization endpoint that approves at once, and a token
endpoint that checks the client secret and the PKCE verifier and signs an id_token.
``claims`` overrides what the next id_token says (to test refusals)."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "surefoot-console"
CLIENT_SECRET = "provider-issued-secret"


@dataclass
class Grant:
    challenge: str
    nonce: str
    redirect_uri: str


@dataclass
class Provider:
    url: str = ""
    user: dict[str, Any] = field(
        default_factory=lambda: {"preferred_username": "oidc-ann", "email": "ann@example.org"}
    )
    claims: dict[str, Any] = field(default_factory=dict)
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
    )
    signing_key: RSAKey | None = None  # set: sign with a key the JWKS does not publish
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: int = 0

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }

        @api.get("/jwks")
        def jwks() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        @api.get("/authorize")
        def authorize(
            client_id: str,
            redirect_uri: str,
            state: str,
            nonce: str,
            code_challenge: str,
            code_challenge_method: str,
            response_type: str,
        ) -> RedirectResponse:
            assert (client_id, response_type, code_challenge_method) == (CLIENT_ID, "code", "S256")
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(code_challenge, nonce, redirect_uri)
            query = urlencode({"code": code, "state": state})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

        @api.post("/token", response_model=None)
        async def token(request: Request) -> dict[str, Any] | JSONResponse:
            self.token_requests += 1
            form = await request.form()
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.grants.pop(str(form.get("code")), None)
            verifier = str(form.get("code_verifier", ""))
            if (
                grant is None
                or grant.redirect_uri != form.get("redirect_uri")
                or create_s256_code_challenge(verifier) != grant.challenge
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": self.url,
                "aud": CLIENT_ID,
                "sub": "subject-1",
                "nonce": grant.nonce,
                "iat": now,
                "exp": now + 300,
                **self.user,
                **self.claims,
            }
            key = self.signing_key or self.key
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
            return {"access_token": "at", "token_type": "Bearer", "id_token": id_token}

        return api
