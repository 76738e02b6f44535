"""``surefoot users ...`` and ``surefoot tokens ...``: who may use the API and console.

Passwords come from a prompt or ``--password-stdin``, never from an argument (arguments
show in process lists and shell history). A token's secret is printed once. Every change
appends to the audit log, without secrets or hashes.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from surefoot.cli import render
from surefoot.cli.loading import load_app
from surefoot.domain.access import Role
from surefoot.engine.app import default_actor
from surefoot.engine.runtime import utc_now
from surefoot.errors import ConfigError
from surefoot.web.auth import tokens, users

users_cli = typer.Typer(help="Local users of the API and console.", no_args_is_help=True)
tokens_cli = typer.Typer(help="API tokens for machines.", no_args_is_help=True)

AppArg = Annotated[str, typer.Argument(help="The app, as module:attribute.")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (overrides the app's).")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who acts (default: OS user).")]
RoleOpt = Annotated[Role, typer.Option("--role", help="viewer, operator, reviewer or admin.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _say(text: str) -> None:
    """Print a line as is: names are data, never rich markup."""
    render.console.print(text, markup=False, highlight=False, soft_wrap=True)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("--password-stdin: standard input held no password")
        return password
    entered: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return entered


@users_cli.command("add")
def users_add(
    app: AppArg,
    name: Annotated[str, typer.Argument(help="User name (signs in with it).")],
    role: RoleOpt,
    password_stdin: PasswordStdin = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="A user who signs in by OIDC only.")
    ] = False,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Add a user (password from a prompt, or --password-stdin)."""
    loaded = load_app(app, store=store, create=True)
    password = None if no_password else _password(password_stdin)
    user = users.add_user(
        loaded.store, name, password, role, actor=actor or default_actor(), now=utc_now()
    )
    _say(f"added user {user.username} ({user.role.value})")


@users_cli.command("list")
def users_list(app: AppArg, store: StoreOpt = None) -> None:
    """Users with their role and whether they are disabled."""
    for user in load_app(app, store=store).store.list_users():
        state = "disabled" if user.disabled else "enabled"
        sign_in = "password" if user.password_hash else "oidc"
        _say(f"{user.username:<32} {user.role.value:<9} {state:<9} {sign_in}")


@users_cli.command("set-role")
def users_set_role(
    app: AppArg, name: str, role: RoleOpt, store: StoreOpt = None, actor: ActorOpt = None
) -> None:
    """Change a user's role (their sessions end)."""
    user = load_app(app, store=store).store.update_user(
        name, role=role, actor=actor or default_actor(), now=utc_now()
    )
    _say(f"{user.username} is now {user.role.value}")


@users_cli.command("set-password")
def users_set_password(
    app: AppArg,
    name: str,
    password_stdin: PasswordStdin = False,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Set a user's password (their sessions end)."""
    loaded = load_app(app, store=store)
    users.set_password(
        loaded.store, name, _password(password_stdin), actor=actor or default_actor(), now=utc_now()
    )
    _say(f"password of {name} changed")


def _set_disabled(
    app: str, name: str, disabled: bool, store: str | None, actor: str | None
) -> None:
    user = load_app(app, store=store).store.update_user(
        name, disabled=disabled, actor=actor or default_actor(), now=utc_now()
    )
    _say(f"{user.username} {'disabled' if user.disabled else 'enabled'}")


@users_cli.command("disable")
def users_disable(app: AppArg, name: str, store: StoreOpt = None, actor: ActorOpt = None) -> None:
    """Refuse the user's sign-ins and end their sessions."""
    _set_disabled(app, name, True, store, actor)


@users_cli.command("enable")
def users_enable(app: AppArg, name: str, store: StoreOpt = None, actor: ActorOpt = None) -> None:
    """Let a disabled user sign in again."""
    _set_disabled(app, name, False, store, actor)


@tokens_cli.command("create")
def tokens_create(
    app: AppArg,
    name: Annotated[str, typer.Argument(help="What uses the token.")],
    role: RoleOpt,
    expires_days: Annotated[
        float | None, typer.Option(help="Expire after N days (default: never).")
    ] = None,
    store: StoreOpt = None,
    actor: ActorOpt = None,
) -> None:
    """Create an API token; its secret is printed this once (store it in a vault)."""
    loaded = load_app(app, store=store, create=True)
    secret, record = tokens.create_token(
        loaded.store,
        name,
        role,
        actor=actor or default_actor(),
        now=utc_now(),
        expires_days=expires_days,
    )
    render.err.print(
        f"token {record.token_id} ({record.role.value}); the secret, shown once:", markup=False
    )
    sys.stdout.write(secret + "\n")


@tokens_cli.command("list")
def tokens_list(app: AppArg, store: StoreOpt = None) -> None:
    """Tokens (never their secrets)."""
    now = utc_now()
    for token in load_app(app, store=store).store.list_tokens():
        state = "usable" if token.usable(now) else ("revoked" if token.revoked_at else "expired")
        expires = token.expires_at.isoformat(timespec="seconds") if token.expires_at else "never"
        _say(
            f"{token.token_id}  {token.name:<24} {token.role.value:<9} {state:<8} expires {expires}"
        )


@tokens_cli.command("revoke")
def tokens_revoke(
    app: AppArg, token_id: str, store: StoreOpt = None, actor: ActorOpt = None
) -> None:
    """Revoke a token at once."""
    load_app(app, store=store).store.revoke_token(
        token_id, actor=actor or default_actor(), now=utc_now()
    )
    _say(f"revoked {token_id}")
