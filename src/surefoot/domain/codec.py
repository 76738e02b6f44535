"""JSON encoding of inputs, results and payloads, typed by annotations.

A step's result is stored as JSON and decoded with its return annotation
(pydantic does both), so a ``Decimal`` comes back a ``Decimal`` and a model
comes back a model. The live path returns the *decoded* value too: workflow
code sees exactly the same value on the first run and on every replay.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from surefoot.errors import SerializationError

_ANY: TypeAdapter[Any] = TypeAdapter(Any)
# The encoders json.dumps would build on every call with these options, built once: the
# same options give the same text, and an encoder keeps no state between calls.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@lru_cache(maxsize=4096)
def adapter_for(annotation: Any) -> TypeAdapter[Any]:
    if annotation is inspect.Signature.empty or annotation is Any:
        return _ANY
    try:
        return TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - an annotation pydantic cannot handle means "any"
        return _ANY


def dumps(value: Any, annotation: Any = Any, *, what: str = "value") -> str:
    """Encode to compact JSON text or raise :class:`SerializationError`."""
    adapter = adapter_for(annotation)
    try:
        if adapter is not _ANY:
            value = adapter.validate_python(value)
        return adapter.dump_json(value).decode()
    except ValidationError as exc:
        raise SerializationError(f"{what} does not match its annotation: {exc}") from exc
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise SerializationError(f"{what} is not JSON-serializable: {exc}") from exc


def loads(text: str | None, annotation: Any = Any, *, what: str = "value") -> Any:
    if text is None:
        return None
    try:
        return adapter_for(annotation).validate_json(text)
    except ValueError as exc:
        raise SerializationError(f"{what} could not be decoded: {exc}") from exc


def roundtrip(value: Any, annotation: Any = Any, *, what: str = "value") -> tuple[str, Any]:
    text = dumps(value, annotation, what=what)
    return text, loads(text, annotation, what=what)


_PLAIN_TYPES = frozenset({int, bool, type(None)})


def _plain(value: Any, annotation: Any) -> bool:
    """Whether pydantic would hand ``value`` back as it is, both ways, against
    ``annotation``: an int, a bool, None or an ASCII str, annotated with its own exact
    type or not at all. Those skip pydantic (most step arguments are such values); an
    ``int`` annotation given a ``bool``, a subclass, a non-ASCII str (which pydantic
    checks for lone surrogates) and everything else still go through it."""
    kind = type(value)
    if kind is str:
        if not value.isascii():
            return False
    elif kind not in _PLAIN_TYPES:
        return False
    return annotation is Any or annotation is kind or annotation is inspect.Signature.empty


def canonical(value: Any) -> str:
    """Stable JSON for hashing (sorted keys, no whitespace, ASCII only, ``str()`` of
    anything JSON has no type for): the bytes audit hashes cover, so they never change."""
    return _CANONICAL.encode(value)


class Signature:
    """Encodes a function's call arguments by its parameter annotations."""

    def __init__(self, fn: Callable[..., Any], *, skip_first: bool = False) -> None:
        self.name = getattr(fn, "__qualname__", repr(fn))
        self.signature = inspect.signature(fn)
        try:
            hints = get_type_hints(fn)
        except Exception:  # noqa: BLE001 - unresolvable hints fall back to "any"
            hints = {}
        params = list(self.signature.parameters.values())
        if skip_first and params:
            params = params[1:]
            self.signature = self.signature.replace(parameters=params)
        self.hints = {p.name: hints.get(p.name, Any) for p in params}
        self.return_annotation: Any = hints.get("return", Any)
        # Parameters before a *args must be passed by position, or *args could not follow.
        kinds = [p.kind for p in params]
        self._positional_before = (
            kinds.index(inspect.Parameter.VAR_POSITIONAL)
            if inspect.Parameter.VAR_POSITIONAL in kinds
            else 0
        )

    def encode_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise SerializationError(f"arguments do not fit {self.name}: {exc}") from exc
        payload: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            param = self.signature.parameters[name]
            hint = self.hints.get(name, Any)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                payload[name] = [
                    json.loads(dumps(v, hint, what=f"argument {name!r}")) for v in value
                ]
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                payload[name] = {
                    k: json.loads(dumps(v, hint, what=f"argument {k!r}")) for k, v in value.items()
                }
            elif _plain(value, hint):
                payload[name] = value
            else:
                payload[name] = json.loads(dumps(value, hint, what=f"argument {name!r}"))
        return _COMPACT.encode(payload)

    def validate_inputs(self, text: str) -> None:
        """Raise :class:`SerializationError` unless ``text`` decodes to a valid call."""
        try:
            args, kwargs = self.decode_call(text)
        except (ValueError, TypeError) as exc:
            raise SerializationError(f"inputs do not fit {self.name}: {exc}") from exc
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise SerializationError(f"inputs do not fit {self.name}: {exc}") from exc
        unknown = set(json.loads(text)) - set(self.signature.parameters)
        if unknown:
            raise SerializationError(
                f"inputs do not fit {self.name}: unknown argument(s) {', '.join(sorted(unknown))}"
            )

    def decode_call(self, text: str) -> tuple[list[Any], dict[str, Any]]:
        raw: dict[str, Any] = json.loads(text)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        positional_before = self._positional_before
        for index, (name, param) in enumerate(self.signature.parameters.items()):
            if name not in raw:
                continue
            value = raw[name]
            hint = self.hints.get(name, Any)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                adapter = adapter_for(hint)
                args.extend(adapter.validate_python(item) for item in value)
            elif param.kind is inspect.Parameter.VAR_KEYWORD:
                adapter = adapter_for(hint)
                kwargs.update({key: adapter.validate_python(item) for key, item in value.items()})
            else:
                decoded = value if _plain(value, hint) else adapter_for(hint).validate_python(value)
                if param.kind is inspect.Parameter.POSITIONAL_ONLY or index < positional_before:
                    args.append(decoded)
                else:
                    kwargs[name] = decoded
        return args, kwargs
