import dataclasses
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from typing_extensions import TypedDict

from streamboot.codecs import Codec, FlatCodec, JsonCodec, codec_for, payload_problem
from streamboot.errors import PayloadError


class Item(BaseModel):
    sku: str
    qty: int
    tags: list[str] = []
    note: str | None = None


def test_flat_round_trip_converts_strings_to_types() -> None:
    codec = FlatCodec()
    fields = codec.encode(Item(sku="a", qty=2, tags=["x"]))
    assert fields == {"sku": "a", "qty": "2", "tags": '["x"]'}
    assert codec.decoder(Item)({"sku": "a", "qty": "2"}) == Item(sku="a", qty=2)


def test_flat_invalid_payload_names_the_field() -> None:
    with pytest.raises(PayloadError, match=r"invalid Item: qty: Input should be a valid integer"):
        FlatCodec().decoder(Item)({"sku": "a", "qty": "two"})


def test_without_a_model_the_raw_fields_pass_through() -> None:
    fields = {"a": "b"}
    assert FlatCodec().decoder(None)(fields) is fields


def test_json_round_trip_and_errors() -> None:
    codec = JsonCodec("body")
    fields = codec.encode(Item(sku="a", qty=1, note="n"))
    assert list(fields) == ["body"]
    assert codec.decoder(Item)(fields) == Item(sku="a", qty=1, note="n")
    with pytest.raises(PayloadError, match="field 'body' is missing"):
        codec.decoder(Item)({"other": "{}"})
    with pytest.raises(PayloadError, match="invalid Item"):
        codec.decoder(Item)({"body": "{not json"})
    with pytest.raises(PayloadError, match="not JSON"):
        codec.decoder(None)({"body": "{not json"})


def test_codec_for() -> None:
    assert isinstance(codec_for("flat"), FlatCodec)
    json_codec = codec_for("json", "p")
    assert isinstance(json_codec, JsonCodec)
    assert json_codec.field == "p"


@dataclasses.dataclass
class Parcel:
    sku: str
    qty: int


class Refund(TypedDict):
    order_id: str
    cents: int


@pytest.mark.parametrize("codec", [FlatCodec(), JsonCodec()])
def test_dataclass_and_typeddict_payloads_are_built_and_validated(codec: Codec) -> None:
    fields = codec.encode(Parcel(sku="a", qty=2))
    assert codec.decoder(Parcel)(fields) == Parcel(sku="a", qty=2)
    refund = codec.decoder(Refund)(codec.encode({"order_id": "o1", "cents": 250}))
    assert refund == {"order_id": "o1", "cents": 250}
    with pytest.raises(PayloadError, match="invalid Parcel: qty: Input should be a valid int"):
        codec.decoder(Parcel)(codec.encode({"sku": "a", "qty": "two"}))


def test_only_types_the_codecs_build_are_accepted() -> None:
    for ok in (None, dict, dict[str, str], Item, Parcel, Refund):
        assert payload_problem(ok) is None, ok
    for bad in (str, int, list[str], dict[str, int]):
        assert payload_problem(bad) is not None, bad
    if sys.version_info < (3, 12):
        import typing

        class Old(typing.TypedDict):
            a: str

        assert "typing_extensions.TypedDict" in str(payload_problem(Old))


class Line(BaseModel):
    sku: str
    qty: int


class Basket(BaseModel):
    order_id: str
    lines: list[Line]
    tags: list[str] = []
    meta: dict[str, int] = {}
    gift: Line | None = None
    note: str | None = None


@dataclasses.dataclass
class Shipment:
    parcels: list[Parcel]
    by_sku: dict[str, int]


_text = st.text(max_size=20)
_lines = st.builds(Line, sku=_text, qty=st.integers(-10**6, 10**6))
_baskets = st.builds(
    Basket, order_id=_text, lines=st.lists(_lines, max_size=4),
    tags=st.lists(_text, max_size=4), meta=st.dictionaries(_text, st.integers(), max_size=3),
    gift=st.none() | _lines, note=st.none() | _text)


@given(basket=_baskets)
@settings(max_examples=300, deadline=None)
@pytest.mark.parametrize("codec", [FlatCodec(), JsonCodec()])
def test_what_a_codec_writes_its_decoder_reads_back(codec: Codec, basket: Basket) -> None:
    """The listener's own Publisher writes with the codec its handler reads with: nested
    fields (lists, mappings, models) survive the flat codec too (a new user's trial found
    a list of models dead-lettered as 'Input should be a valid list')."""
    assert codec.decoder(Basket)(codec.encode(basket)) == basket


def test_nested_dataclass_fields_survive_the_flat_codec() -> None:
    shipment = Shipment([Parcel("a", 1), Parcel("b", 2)], {"a": 1})
    codec = FlatCodec()
    assert codec.decoder(Shipment)(codec.encode(shipment)) == shipment


def test_a_nested_field_that_is_not_json_is_named_by_validation() -> None:
    with pytest.raises(PayloadError, match=r"invalid Basket: lines: Input should be a valid list"):
        FlatCodec().decoder(Basket)({"order_id": "o", "lines": "[not json"})
