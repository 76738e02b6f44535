"""Find the App named ``module:attribute`` and parse JSON arguments."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from surefoot.engine.app import App
from surefoot.errors import ConfigError


def load_app(spec: str, *, store: str | None = None, create: bool = False) -> App:
    """Import the app. Only commands that put work in (worker, start) may create a store:
    an operator command pointed at a mistyped path must fail, not show an empty store."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"APP must look like module:attribute (e.g. examples.invoices:app), got {spec!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for APP {spec!r}: {exc}") from exc
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise ConfigError(f"{spec!r} is not a surefoot App (found {type(app).__name__})")
    overrides: dict[str, Any] = {"create_store": create}
    if store:
        overrides["store_url"] = store
    app.settings = app.settings.with_overrides(**overrides)
    return app


def parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from exc
