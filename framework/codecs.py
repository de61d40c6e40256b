"""Payload codecs: how a handler's payload travels in a stream entry's fields.

``flat`` keeps one field per attribute (the seeds' style, readable with ``XRANGE`` in
redis-cli); ``json`` keeps the whole payload as JSON in one field, for nested payloads.

The payload type is the handler's generic parameter, ``StreamHandler[P]``. The codecs
build a pydantic model, a dataclass or a ``TypedDict`` (the last two through pydantic's
``TypeAdapter``), or hand over the raw fields (``dict[str, str]``). Any other ``P`` is
refused by name (:func:`payload_problem`), so ``StreamHandler[str]`` never silently
receives a dict.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import is_typeddict  # both kinds (typing's and its own)

from .errors import PayloadError, UnpublishableError

Decoder = Callable[[dict[str, str]], Any]
BatchDecoder = Callable[[list[dict[str, str]]], list[Any]]
"""Many entries' payloads in one call into pydantic-core; raises when any is invalid (the
caller then decodes one by one, to say which)."""


def is_raw(tp: Any) -> bool:
    """Payload types that receive the entry's fields as they are."""
    if tp is None or tp is Any or tp is dict or tp is Mapping:
        return True
    if typing.get_origin(tp) in (dict, Mapping):
        args = typing.get_args(tp)
        return not args or all(a in (str, Any) for a in args)
    return False


def payload_problem(tp: Any) -> str | None:
    """Why the codecs cannot build ``tp``, or None when they can."""
    if is_raw(tp) or _is_model(tp):
        return None
    name = getattr(tp, "__name__", None) or repr(tp)
    if _is_adapted(tp):
        try:
            TypeAdapter(tp)
        except Exception as exc:  # pydantic refuses it (e.g. typing.TypedDict before 3.12)
            first = str(exc).strip().splitlines()[0]
            return f"payload type {name} cannot be built by pydantic: {first}"
        return None
    return (f"payload type {name} is not one the codecs build: use a pydantic model, a "
            "dataclass, a TypedDict, or dict[str, str] for the raw fields")


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_adapted(tp: Any) -> bool:
    return (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or is_typeddict(tp)


def _name(tp: Any) -> str:
    return str(getattr(tp, "__name__", tp))


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _raw(fields: dict[str, str]) -> dict[str, str]:
    return fields


def _validators(tp: Any) -> tuple[Callable[[Any], Any], Callable[[str], Any]]:
    """(from a mapping, from JSON text) for a model, a dataclass or a TypedDict."""
    if _is_model(tp):
        return tp.model_validate, tp.model_validate_json
    adapter: TypeAdapter[Any] = TypeAdapter(tp)
    return adapter.validate_python, adapter.validate_json


def _plain(payload: Any) -> dict[str, Any]:
    """A payload as JSON-ready values: a model, a dataclass, or a mapping (a TypedDict)."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json")
    if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
        return dict(TypeAdapter(type(payload)).dump_python(payload, mode="json"))
    if isinstance(payload, Mapping):
        return dict(TypeAdapter(dict[str, Any]).dump_python(dict(payload), mode="json"))
    raise UnpublishableError(f"cannot publish a {type(payload).__name__}: give a pydantic model, a "
                    "dataclass instance or a mapping")


class Codec(Protocol):
    def decoder(self, payload_type: Any) -> Decoder: ...

    def batch_decoder(self, payload_type: Any) -> BatchDecoder | None: ...

    def encode(self, payload: Any) -> dict[str, str]: ...


_CONTAINERS = (list, tuple, set, frozenset, dict, Mapping, typing.Sequence,
               typing.MutableMapping, typing.MutableSequence, typing.AbstractSet)


def _is_nested(tp: Any) -> bool:
    """Whether a field of this type travels as JSON text in the flat codec (a list, a
    mapping, a model…): a union counts when an arm is nested and none is plain text."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _is_nested(typing.get_args(tp)[0])
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        arms = typing.get_args(tp)
        return str not in arms and any(_is_nested(arm) for arm in arms)
    if origin in _CONTAINERS or tp in _CONTAINERS:
        return True
    return _is_model(tp) or _is_adapted(tp)


def _nested_fields(tp: Any) -> frozenset[str]:
    """The field names (as they appear in the entry) whose values are JSON text."""
    if _is_model(tp):
        return frozenset(info.alias or name for name, info in tp.model_fields.items()
                         if _is_nested(info.annotation))
    hints = typing.get_type_hints(tp, include_extras=True)
    return frozenset(name for name, hint in hints.items() if _is_nested(hint))


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # not JSON: validation says what is wrong with it


class FlatCodec:
    """Each attribute in its own field; nested values (lists, mappings, models) as JSON
    text — written so by :meth:`encode`, read back so by the decoder, so the listener's
    own Publisher writes what its handler reads."""

    def decoder(self, payload_type: Any) -> Decoder:
        if is_raw(payload_type):
            return _raw
        validate, _ = _validators(payload_type)
        name = _name(payload_type)
        nested = _nested_fields(payload_type)

        def decode(fields: dict[str, str]) -> Any:
            if nested:  # only payloads with nested fields pay for the copy
                fields = {k: _parsed(v) if k in nested else v for k, v in fields.items()}
            try:
                return validate(fields)
            except ValidationError as exc:
                raise PayloadError(f"invalid {name}: {_describe(exc)}", exc) from None

        return decode

    def batch_decoder(self, payload_type: Any) -> BatchDecoder | None:
        """A list validated in one ``TypeAdapter`` call: about half the per-entry cost of
        ``model_validate`` on each (the call's overhead is paid once). None for the raw
        fields (nothing to validate)."""
        if is_raw(payload_type):
            return None
        validate = TypeAdapter(list[payload_type]).validate_python
        nested = _nested_fields(payload_type)
        if not nested:
            return validate

        def decode_many(many: list[dict[str, str]]) -> list[Any]:
            return validate([{k: _parsed(v) if k in nested else v for k, v in fields.items()}
                             for fields in many])

        return decode_many

    def encode(self, payload: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in _plain(payload).items():
            if value is None:
                continue
            out[key] = value if isinstance(value, str) else json.dumps(value)
        return out


class JsonCodec:
    """The whole payload as JSON in one field (``json_field``, default ``payload``)."""

    def __init__(self, field: str = "payload") -> None:
        self.field = field

    def decoder(self, payload_type: Any) -> Decoder:
        field = self.field
        raw = is_raw(payload_type)
        validate_json = None if raw else _validators(payload_type)[1]
        name = _name(payload_type)

        def decode(fields: dict[str, str]) -> Any:
            text = fields.get(field)
            if text is None:
                raise PayloadError(f"field {field!r} is missing (json codec)")
            if validate_json is None:
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise PayloadError(f"field {field!r} is not JSON: {exc}", exc) from None
            try:
                return validate_json(text)
            except ValidationError as exc:
                raise PayloadError(f"invalid {name}: {_describe(exc)}", exc) from None

        return decode

    def batch_decoder(self, payload_type: Any) -> BatchDecoder | None:
        """None: each entry's JSON text is validated on its own (``validate_json`` parses
        and validates in one pass already)."""
        return None

    def encode(self, payload: Any) -> dict[str, str]:
        if isinstance(payload, BaseModel):
            return {self.field: payload.model_dump_json()}
        return {self.field: json.dumps(_plain(payload), separators=(",", ":"))}


def codec_for(name: Literal["flat", "json"], json_field: str = "payload") -> Codec:
    return JsonCodec(json_field) if name == "json" else FlatCodec()
