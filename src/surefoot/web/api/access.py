"""Who am I; users and API tokens (admins only). Secrets are never returned, except a
new token's secret, once, in the answer that creates it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, status
from pydantic import Field, StrictBool, StrictFloat

from surefoot.domain.access import ROLE_PERMISSIONS, Permission, Role
from surefoot.domain.access import Permission as Perm
from surefoot.web.api.common import ApiRoute, Caller, Surefoot, requires
from surefoot.web.api.fields import Strict
from surefoot.web.api.models import NewToken, Token, User
from surefoot.web.auth import tokens, users
from surefoot.web.auth.deps import now_of
from surefoot.web.auth.passwords import MIN_LENGTH
from surefoot.web.auth.users import USERNAME_PATTERN

router = APIRouter(tags=["access"], route_class=ApiRoute)


class Me(Strict):
    name: str
    role: Role
    via: str
    permissions: list[Permission]


Password = Annotated[
    str, Field(min_length=MIN_LENGTH, max_length=1024, description="At least 10 characters.")
]


class NewUser(Strict):
    username: Annotated[str, Field(pattern=USERNAME_PATTERN)]
    role: Role
    password: Password | None = Field(None, description="Omit for a user who signs in by OIDC.")


class UserChange(Strict):
    role: Role | None = None
    disabled: StrictBool | None = None
    password: Password | None = None


class TokenRequest(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")
    role: Role
    expires_days: StrictFloat | None = Field(None, gt=0, le=36500)


@router.get("/me", response_model=Me, **requires(Perm.READ))
def me(caller: Caller) -> Me:
    return Me(
        name=caller.name,
        role=caller.role,
        via=caller.via,
        permissions=sorted(ROLE_PERMISSIONS[caller.role]),
    )


@router.get("/users", response_model=list[User], **requires(Perm.MANAGE_USERS))
def list_users(app: Surefoot) -> list[User]:
    return [User.of(u) for u in app.store.list_users()]


@router.post(
    "/users",
    response_model=User,
    status_code=status.HTTP_201_CREATED,
    **requires(Perm.MANAGE_USERS),
)
def add_user(body: NewUser, request: Request, app: Surefoot, caller: Caller) -> User:
    created = users.add_user(
        app.store, body.username, body.password, body.role, actor=caller.name, now=now_of(request)
    )
    return User.of(created)


@router.patch("/users/{username}", response_model=User, **requires(Perm.MANAGE_USERS))
def change_user(
    username: str, body: UserChange, request: Request, app: Surefoot, caller: Caller
) -> User:
    """Change role, disable or enable, set a password. The user's sessions end."""
    now = now_of(request)
    if body.password is not None:
        users.set_password(app.store, username, body.password, actor=caller.name, now=now)
    changed = app.store.update_user(
        username, role=body.role, disabled=body.disabled, actor=caller.name, now=now
    )
    return User.of(changed)


@router.get("/tokens", response_model=list[Token], **requires(Perm.MANAGE_USERS))
def list_tokens(app: Surefoot) -> list[Token]:
    return [Token.of(t) for t in app.store.list_tokens()]


@router.post(
    "/tokens",
    response_model=NewToken,
    status_code=status.HTTP_201_CREATED,
    **requires(Perm.MANAGE_USERS),
)
def create_token(body: TokenRequest, request: Request, app: Surefoot, caller: Caller) -> NewToken:
    """A new API token; its ``secret`` is in this answer only."""
    secret, record = tokens.create_token(
        app.store,
        body.name,
        body.role,
        actor=caller.name,
        now=now_of(request),
        expires_days=body.expires_days,
    )
    return NewToken(secret=secret, **Token.of(record).model_dump())


@router.delete("/tokens/{token_id}", response_model=Token, **requires(Perm.MANAGE_USERS))
def revoke_token(token_id: str, request: Request, app: Surefoot, caller: Caller) -> Token:
    return Token.of(app.store.revoke_token(token_id, actor=caller.name, now=now_of(request)))
