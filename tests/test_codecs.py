import pytest
from pydantic import BaseModel

from framework.codecs import FlatCodec, JsonCodec, PayloadError, codec_for


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
