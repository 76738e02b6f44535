"""An HTTP client of the console as a browser without JavaScript uses it: forms, cookies,
CSRF tokens read from the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.e2e.console_support import PASSWORD

CSRF_IN_FORM = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browserless:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=20)
        self.token = ""

    def __enter__(self) -> Browserless:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http.get(path, **kwargs)
        found = CSRF_IN_FORM.search(answer.text)
        if found:
            self.token = found.group(1)
        return answer

    def post(self, path: str, form: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.token, **(form or {})})

    def sign_in(self, username: str) -> None:
        self.get("/login")
        answer = self.post("/login", {"username": username, "password": PASSWORD, "next": "/"})
        assert answer.status_code == 303, answer.text
        self.get("/")


@contextmanager
def signed_in(base_url: str, username: str) -> Iterator[Browserless]:
    client = Browserless(base_url)
    try:
        client.sign_in(username)
        yield client
    finally:
        client.http.close()
