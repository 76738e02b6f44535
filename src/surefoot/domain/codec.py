"""JSON encoding of inputs, results and payloads, typed by annotations.

A step's result is stored as JSON and decoded with its return annotation
(pydantic does both), so a ``Decimal`` comes back a ``Decimal`` and a model
comes back a model. The live path returns the *decoded* value too: workflow
code sees exactly the same value on the first run and on every replay.

The plainest values (an int, a bool, None or ASCII text, annotated with their own type
or not at all) are written and read by the standard library instead, as the very text
pydantic would write and the very value it would read back (a property test holds the
two to that).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, get_type_hints

from surefoot.errors import SerializationError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

# pydantic is imported at the first value that needs it, not with this module: a worker
# whose steps take and return ints, strings, bools and None (the shortcut below) never
# pays for it, and every process starts (and a crashed worker restarts) that much sooner.

# The encoders json.dumps would build on every call with these options, built once: the
# same options give the same text, and an encoder keeps no state between calls.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# Plain values as pydantic writes them: like _COMPACT, but DEL (the one ASCII character
# the two escape differently) is left as it is, as pydantic leaves it.
_PLAIN_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@cache
def _any_adapter() -> TypeAdapter[Any]:
    from pydantic import TypeAdapter  # noqa: PLC0415 - imported when first needed

    return TypeAdapter(Any)


@lru_cache(maxsize=4096)
def adapter_for(annotation: Any) -> TypeAdapter[Any]:
    if annotation is inspect.Signature.empty or annotation is Any:
        return _any_adapter()
    from pydantic import TypeAdapter  # noqa: PLC0415 - imported when first needed

    try:
        return TypeAdapter(annotation)
    except Exception:  # noqa: BLE001 - an annotation pydantic cannot handle means "any"
        return _any_adapter()


def dumps(value: Any, annotation: Any = Any, *, what: str = "value") -> str:
    """Encode to compact JSON text or raise :class:`SerializationError`."""
    if _plain(value, annotation):
        try:
            return _PLAIN_JSON.encode(value)  # the very text pydantic makes of it
        except ValueError:
            pass  # an int too long for str(): pydantic's to encode, or to refuse
    from pydantic import ValidationError  # noqa: PLC0415 - imported when first needed
    from pydantic_core import PydanticSerializationError  # noqa: PLC0415

    adapter = adapter_for(annotation)
    try:
        if adapter is not _any_adapter():
            value = adapter.validate_python(value)
        return adapter.dump_json(value).decode()
    except ValidationError as exc:
        raise SerializationError(f"{what} does not match its annotation: {exc}") from exc
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise SerializationError(f"{what} is not JSON-serializable: {exc}") from exc


def loads(text: str | None, annotation: Any = Any, *, what: str = "value") -> Any:
    if text is None:
        return None
    if _maybe_plain(annotation):
        try:
            value = json.loads(text)
        except ValueError:
            pass  # not JSON (or an int too long): pydantic says why
        else:
            if _plain(value, annotation):
                return value
    try:
        return adapter_for(annotation).validate_json(text)
    except ValueError as exc:
        raise SerializationError(f"{what} could not be decoded: {exc}") from exc


def roundtrip(value: Any, annotation: Any = Any, *, what: str = "value") -> tuple[str, Any]:
    text = dumps(value, annotation, what=what)
    return text, loads(text, annotation, what=what)


_PLAIN_TYPES = frozenset({int, bool, type(None)})
_PLAIN_ANNOTATIONS = (Any, inspect.Signature.empty, int, bool, str, type(None))


def _maybe_plain(annotation: Any) -> bool:
    """Whether a value annotated so may be plain (see :func:`_plain`)."""
    return any(annotation is plain for plain in _PLAIN_ANNOTATIONS)


def _plain(value: Any, annotation: Any) -> bool:
    """Whether pydantic would hand ``value`` back as it is, both ways, against
    ``annotation``: an int, a bool, None or an ASCII str, annotated with its own exact
    type or not at all. Those skip pydantic (most step arguments and many results are
    such values); an ``int`` annotation given a ``bool``, a subclass, a non-ASCII str
    (which pydantic checks for lone surrogates) and everything else still go through it."""
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
