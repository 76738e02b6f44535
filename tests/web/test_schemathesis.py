"""schemathesis against the OpenAPI document, every check on, as an admin: no server
error anywhere, every response as documented, and no operation that ignores auth (the
ignored-auth check calls each one again without the token and expects a refusal).

The document is the one ``create_app`` serves (built once here, from an app of the same
workflows); each case goes over real HTTP to a live server on a fresh store. The admin
token is applied through schemathesis' auth provider, so its negative cases (the token
left out) are sent without it.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import surefoot as sf
from surefoot.config import WebSettings
from surefoot.domain.access import ApiTokenRecord, Role
from surefoot.engine.runtime import utc_now
from surefoot.web.app import create_app
from surefoot.web.auth import tokens
from tests.web import flows
from tests.web.conftest import LiveServer

ADMIN_SECRET = tokens.PREFIX + "schemathesis-admin-secret-for-this-test-only"

DOCUMENT = create_app(flows.declare(sf.App("document")), WebSettings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.auth()
class AdminToken:
    def get(self, case: schemathesis.Case[Any], ctx: Any) -> str:
        return ADMIN_SECRET

    def set(self, case: schemathesis.Case[Any], data: str, ctx: Any) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


@pytest.fixture
def admin_token(app: sf.App) -> None:
    now = utc_now()
    app.store.create_token(
        ApiTokenRecord(
            token_id="schemathesis",
            token_hash=tokens.digest(ADMIN_SECRET),
            name="schemathesis",
            role=Role.ADMIN,
            created_by="test",
            created_at=now,
        ),
        now=now,
    )


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.usefixtures("admin_token")
def test_api_conforms_to_its_document_with_no_server_error_and_no_ignored_auth(
    case: schemathesis.Case[Any], live_server: LiveServer
) -> None:
    case.call_and_validate(base_url=live_server.url)
