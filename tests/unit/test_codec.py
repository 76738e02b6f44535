"""The codec: values come back as the type their annotation names, or fail with
SerializationError; call arguments round-trip through their signature."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from surefoot.domain import codec
from surefoot.domain.codec import Signature, canonical, dumps, loads, roundtrip
from surefoot.errors import SerializationError


class Invoice(BaseModel):
    invoice_id: str
    amount: Decimal
    issued_at: datetime


@dataclass
class Line:
    sku: str
    quantity: int
    price: Decimal


NOW = datetime(2030, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (Decimal("0.10"), Decimal),
        (Decimal("12345678901234567890.000000001"), Decimal),
        (NOW, datetime),
        (datetime(2030, 1, 1, 9, tzinfo=timezone(timedelta(hours=2))), datetime),
        (date(2030, 1, 31), date),
        (Invoice(invoice_id="INV-1", amount=Decimal("99.90"), issued_at=NOW), Invoice),
        (Line("A-1", 3, Decimal("1.05")), Line),
        ([Decimal("1.10"), Decimal("2.20")], list[Decimal]),
        ({"a": Line("A", 1, Decimal("0.01"))}, dict[str, Line]),
        (None, Decimal | None),
    ],
)
def test_value_round_trips_to_an_equal_value_of_the_same_type(value, annotation):
    text, decoded = roundtrip(value, annotation)
    assert decoded == value
    assert type(decoded) is type(value)
    assert loads(text, annotation) == value
    json.loads(text)


def test_decimal_keeps_its_exact_digits_and_scale():
    text = dumps(Decimal("1.10"), Decimal)
    assert loads(text, Decimal).as_tuple() == Decimal("1.10").as_tuple()


def test_aware_datetime_keeps_its_instant_and_microseconds():
    decoded = loads(dumps(NOW, datetime), datetime)
    assert decoded == NOW
    assert decoded.microsecond == 890123
    assert decoded.utcoffset() == timedelta(0)


def test_without_an_annotation_values_come_back_as_plain_json():
    assert loads(dumps({"amount": Decimal("1.5")})) == {"amount": "1.5"}


def test_decimal_annotation_accepts_a_number_and_returns_a_decimal():
    _text, decoded = roundtrip(3, Decimal)
    assert decoded == Decimal(3)
    assert isinstance(decoded, Decimal)


@pytest.mark.parametrize(
    "value",
    [object(), {"callback": print}, [1, object()], {1: lambda: None}],
)
def test_non_json_value_raises_serialization_error(value):
    with pytest.raises(SerializationError, match="the payload"):
        dumps(value, what="the payload")


def test_value_that_does_not_match_its_annotation_raises_serialization_error():
    with pytest.raises(SerializationError, match="the result"):
        dumps("not a number", int, what="the result")


def test_undecodable_text_raises_serialization_error():
    with pytest.raises(SerializationError, match="stored result"):
        loads("{not json", what="the stored result")
    with pytest.raises(SerializationError):
        loads('"abc"', Decimal)


def test_none_text_decodes_to_none():
    assert loads(None, Decimal) is None


def test_canonical_json_is_key_order_independent():
    assert canonical({"b": 1, "a": [2, {"d": 3, "c": 4}]}) == canonical(
        {"a": [2, {"c": 4, "d": 3}], "b": 1}
    )
    assert canonical({"b": 1, "a": 2}) == '{"a":2,"b":1}'


# -- call signatures -------------------------------------------------------------------


def pay(invoice_id: str, amount: Decimal, *, currency: str = "EUR", due: date | None = None):
    return (invoice_id, amount, currency, due)


def test_call_round_trips_with_typed_positional_and_keyword_arguments():
    signature = Signature(pay)
    text = signature.encode_call(("INV-1", Decimal("10.50")), {"due": date(2030, 1, 2)})
    args, kwargs = signature.decode_call(text)
    assert pay(*args, **kwargs) == ("INV-1", Decimal("10.50"), "EUR", date(2030, 1, 2))
    assert isinstance(kwargs["amount"], Decimal)


def test_encoded_call_names_every_given_argument():
    text = Signature(pay).encode_call(("INV-1",), {"amount": Decimal("1"), "currency": "USD"})
    assert json.loads(text) == {"invoice_id": "INV-1", "amount": "1", "currency": "USD"}


def test_defaults_are_not_stored_so_the_function_applies_them():
    args, kwargs = Signature(pay).decode_call(Signature(pay).encode_call(("X", 1), {}))
    assert pay(*args, **kwargs)[2] == "EUR"


def test_models_and_dataclasses_come_back_as_instances():
    def book(invoice: Invoice, lines: list[Line]) -> None: ...

    signature = Signature(book)
    invoice = Invoice(invoice_id="INV-2", amount=Decimal("5"), issued_at=NOW)
    args, kwargs = signature.decode_call(
        signature.encode_call((invoice, [Line("a", 1, Decimal("5"))]), {})
    )
    assert args == []
    assert kwargs["invoice"] == invoice
    assert kwargs["lines"] == [Line("a", 1, Decimal("5"))]


def test_positional_only_parameters_are_decoded_positionally():
    def scale(value: Decimal, factor: int, /) -> Decimal:
        return value * factor

    signature = Signature(scale)
    args, kwargs = signature.decode_call(signature.encode_call((Decimal("1.5"), 2), {}))
    assert args == [Decimal("1.5"), 2]
    assert kwargs == {}
    assert scale(*args, **kwargs) == Decimal("3.0")


def test_var_positional_and_var_keyword_round_trip():
    def collect(*items: Any, **options: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return items, options

    signature = Signature(collect)
    text = signature.encode_call((1, "two", [3]), {"flag": True, "name": "x"})
    args, kwargs = signature.decode_call(text)
    assert collect(*args, **kwargs) == ((1, "two", [3]), {"flag": True, "name": "x"})


def test_decode_call_rebuilds_a_call_with_var_positional_after_named_parameters():
    def total(label: str, *amounts: int) -> tuple[str, tuple[int, ...]]:
        return label, amounts

    signature = Signature(total)
    args, kwargs = signature.decode_call(signature.encode_call(("sum", 1, 2, 3), {}))
    assert total(*args, **kwargs) == ("sum", (1, 2, 3))


def test_var_positional_and_var_keyword_values_are_decoded_by_annotation():
    def total(*amounts: Decimal, **fees: Decimal) -> None: ...

    signature = Signature(total)
    args, kwargs = signature.decode_call(
        signature.encode_call((Decimal("1.10"), Decimal("2.20")), {"shipping": Decimal("0.50")})
    )
    assert args == [Decimal("1.10"), Decimal("2.20")]
    assert all(isinstance(a, Decimal) for a in args)
    assert kwargs == {"shipping": Decimal("0.50")}
    assert isinstance(kwargs["shipping"], Decimal)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("INV-1",), {}),
        (("INV-1", 1, 2), {}),
        (("INV-1", 1), {"colour": "red"}),
        (("INV-1", 1), {"invoice_id": "again"}),
    ],
)
def test_arguments_that_do_not_fit_the_signature_raise_serialization_error(args, kwargs):
    with pytest.raises(SerializationError, match="do not fit"):
        Signature(pay).encode_call(args, kwargs)


def test_non_json_argument_is_named_in_the_error():
    def send(payload: Any) -> None: ...

    with pytest.raises(SerializationError, match="'payload'"):
        Signature(send).encode_call((object(),), {})


def test_skip_first_drops_the_workflow_context_parameter():
    def flow(ctx: object, invoice_id: str, amount: Decimal) -> None: ...

    signature = Signature(flow, skip_first=True)
    assert list(signature.hints) == ["invoice_id", "amount"]
    _args, kwargs = signature.decode_call(signature.encode_call(("INV-1", Decimal("2")), {}))
    assert kwargs == {"invoice_id": "INV-1", "amount": Decimal("2")}


def test_return_annotation_is_recorded_for_result_decoding():
    assert Signature(lambda: None).return_annotation is Any

    def fee() -> Decimal:
        return Decimal("1")

    assert Signature(fee).return_annotation is Decimal


_PLAIN_VALUES = st.one_of(
    st.integers(),
    st.integers(min_value=2**63, max_value=2**80),
    st.booleans(),
    st.none(),
    st.text(),
    st.text(alphabet=st.characters(max_codepoint=127)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
)
_ANNOTATIONS = st.sampled_from([Any, int, bool, str, type(None), float, inspect.Signature.empty])


@settings(max_examples=500, deadline=None)
@given(_PLAIN_VALUES, _ANNOTATIONS)
def test_arguments_that_skip_pydantic_come_out_exactly_as_pydantic_makes_them(
    value: Any, annotation: Any
) -> None:
    """Step and workflow arguments of the plainest kinds skip pydantic when encoded and
    decoded; for each of them, pydantic would have given back the very same value and type."""
    if not codec._plain(value, annotation):
        return
    stored = json.loads(dumps(value, annotation))
    assert stored == value
    assert type(stored) is type(value)
    decoded = codec.adapter_for(annotation).validate_python(stored)
    assert decoded == value
    assert type(decoded) is type(value)


def test_what_pydantic_would_change_still_goes_through_it() -> None:
    """Negative control of the property above: the values the shortcut must leave to
    pydantic are left to it, and come back as pydantic makes them."""
    assert not codec._plain(True, int)  # a bool where an int is annotated
    assert not codec._plain(1, float)  # pydantic makes it 1.0
    assert not codec._plain("naïve", str)  # non-ASCII text: pydantic checks it
    assert not codec._plain(1.5, Any)  # floats (NaN, infinities) are pydantic's
    assert not codec._plain([1], Any)

    def takes_float(x: float) -> float:
        return x

    signature = Signature(takes_float)
    args, kwargs = signature.decode_call(signature.encode_call([1], {}))
    (value,) = [*args, *kwargs.values()]
    assert value == 1.0
    assert type(value) is float


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=127)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


def _pydantic_dumps(value: Any, annotation: Any) -> str:
    adapter = codec.adapter_for(annotation)
    if annotation is not Any and annotation is not inspect.Signature.empty:
        value = adapter.validate_python(value)
    return adapter.dump_json(value).decode()


def _outcome(call: Any) -> tuple[str, Any]:
    """What ``call()`` gives: ("ok", the value's repr and type; NaN is not equal to
    itself) or ("error", None)."""
    try:
        value = call()
    except (SerializationError, ValueError):
        return ("error", None)
    return ("ok", (repr(value), type(value)))


def _disagreement(value: Any, annotation: Any) -> str | None:
    """Where the codec's results for ``value`` differ from pydantic's, if anywhere."""
    if _outcome(lambda: dumps(value, annotation)) != _outcome(
        lambda: _pydantic_dumps(value, annotation)
    ):
        return "encoded differently"
    text = json.dumps(value)
    if _outcome(lambda: loads(text, annotation)) != _outcome(
        lambda: codec.adapter_for(annotation).validate_json(text)
    ):
        return "decoded differently"
    return None


@settings(max_examples=600, deadline=None)
@given(st.one_of(_PLAIN_VALUES, _JSON_VALUES), _ANNOTATIONS)
def test_results_that_skip_pydantic_are_stored_and_read_back_exactly_as_pydantic_does(
    value: Any, annotation: Any
) -> None:
    """Step results and workflow outputs of the plainest kinds skip pydantic; every value,
    plain or not, is stored as the very text pydantic makes of it and read back as the
    value (and type) pydantic gives, or refused where pydantic refuses it."""
    assert _disagreement(value, annotation) is None


def test_a_looser_shortcut_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: a shortcut that also took a bool for an annotated int, or
    non-ASCII text, disagrees with pydantic where the property above looks."""
    assert _disagreement(True, int) is None
    monkeypatch.setattr(
        codec, "_plain", lambda value, annotation: type(value) in (int, bool, str, type(None))
    )
    assert _disagreement(True, int) == "encoded differently"
    assert _disagreement("1", int) == "encoded differently"


def test_an_int_too_long_for_text_goes_to_pydantic() -> None:
    value = 10**5000  # past Python's default limit on int <-> str conversion
    assert _outcome(lambda: dumps(value)) == _outcome(lambda: _pydantic_dumps(value, Any))
