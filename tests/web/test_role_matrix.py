"""Role x endpoint: every operation of the OpenAPI document under /api/v1, called with a
token of every role, is allowed or refused exactly as ROLE_PERMISSIONS says; without a
token, every one is refused with 401."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from surefoot.domain.access import ROLE_PERMISSIONS, Permission, Role
from surefoot.web.api.common import PERMISSION_EXTENSION

METHODS = ("get", "post", "put", "patch", "delete")


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found: list[tuple[str, str, dict[str, Any]]] = []
    for path, item in document["paths"].items():
        if path.startswith("/api/v1/"):
            found.extend(
                (method.upper(), path, item[method]) for method in METHODS if method in item
            )
    return found


def call(
    http: httpx.Client, method: str, path: str, operation: dict[str, Any], token: str | None
) -> httpx.Response:
    url = re.sub(r"\{[^}]+\}", "matrix-probe", path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] | None = {} if "requestBody" in operation else None
    return http.request(method, url, json=body, headers=headers)


def test_every_operation_declares_its_permission_and_the_matrix_holds(
    client: httpx.Client, token_of: Callable[[Role], str]
):
    document = client.get("/openapi.json").json()
    ops = operations(document)
    assert len(ops) >= 25
    cells = 0
    for method, path, operation in ops:
        permission = Permission(operation[PERMISSION_EXTENSION])
        for role in Role:
            answer = call(client, method, path, operation, token_of(role))
            allowed = permission in ROLE_PERMISSIONS[role]
            where = f"{role.value} {method} {path} -> {answer.status_code} {answer.text[:200]}"
            assert answer.status_code < 500, where
            if allowed:
                assert answer.status_code not in (401, 403), where
            else:
                assert answer.status_code == 403, where
                assert answer.json()["error"]["code"] == "permission_denied", where
            cells += 1
        anonymous = call(client, method, path, operation, None)
        assert anonymous.status_code == 401, f"{method} {path} without a token"
        assert anonymous.json()["error"]["code"] == "authentication_required"
    assert cells == len(ops) * len(Role)


def test_the_document_declares_bearer_auth_on_every_api_operation(client: httpx.Client):
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    for method, path, operation in operations(document):
        assert operation.get("security"), f"{method} {path} declares no security"
