"""Errors reach clients as typed JSON with a stable code; no stack trace, SQL or secret
ever does. Unexpected failures answer 500 with a reference id that the server log
carries next to the details."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from surefoot.config import WebSettings
from surefoot.errors import StoreError
from surefoot.web.errors import ERROR_TABLE, status_and_code

LEAK = "SELECT password_hash FROM users WHERE token='sft_supersecret'"


@pytest.fixture
def failing_api(api: FastAPI) -> FastAPI:
    @api.get("/api/v1/test-crash")
    def crash() -> None:
        raise RuntimeError(LEAK)

    @api.get("/api/v1/test-store-down")
    def store_down() -> None:
        raise StoreError(f"sqlite:///x.db: {LEAK}")

    return api


@pytest.mark.usefixtures("failing_api")
def test_an_unexpected_error_answers_500_with_a_reference_and_nothing_else(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.ERROR, logger="surefoot.web"):
        answer = client.get("/api/v1/test-crash")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["code"] == "internal_error"
    assert LEAK not in answer.text
    assert "Traceback" not in answer.text
    assert "RuntimeError" not in answer.text
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert error["reference"] in logged
    assert LEAK in logged


@pytest.mark.parametrize("settings", [WebSettings(insecure_no_auth=True)])
@pytest.mark.usefixtures("failing_api")
def test_with_auth_off_even_a_500_carries_the_warning(client: httpx.Client):
    answer = client.get("/api/v1/test-crash")
    assert answer.status_code == 500
    assert answer.headers["X-Surefoot-Warning"] == "authentication is disabled"


@pytest.mark.usefixtures("failing_api")
def test_a_store_failure_answers_503_without_its_sql_or_url(client: httpx.Client):
    answer = client.get("/api/v1/test-store-down")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "store_unavailable"
    assert LEAK not in answer.text
    assert "sqlite" not in answer.text


def test_unknown_paths_and_methods_are_typed_json_and_405_names_every_allowed_method(
    admin: httpx.Client,
):
    missing = admin.get("/api/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = admin.put("/api/v1/runs")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_malformed_json_is_a_422_with_the_place_it_broke(admin: httpx.Client):
    answer = admin.post(
        "/api/v1/runs", content=b'{"workflow": ', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert answer.json()["error"]["fields"]


def test_every_error_class_has_one_stable_snake_case_code():
    codes = [code for _status, code in ERROR_TABLE.values()]
    assert len(codes) == len(set(codes))
    assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)
    assert status_and_code(KeyError("x")) == (500, "internal_error")
