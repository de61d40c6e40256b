"""Payload codecs: how a pydantic model travels in a stream entry's fields.

``flat`` keeps one field per model attribute (the seeds' style, readable with
``XRANGE`` in redis-cli); ``json`` keeps the whole model as JSON in one field, for
nested payloads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from framework.errors import StreambootError


class PayloadError(StreambootError):
    """The entry's fields cannot become the handler's payload model; retrying cannot help."""

    def __init__(self, message: str, cause: Exception | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class Codec(Protocol):
    def decoder(self, model: type[BaseModel] | None) -> Callable[[dict[str, str]], Any]: ...

    def encode(self, payload: BaseModel) -> dict[str, str]: ...


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _raw(fields: dict[str, str]) -> dict[str, str]:
    return fields


class FlatCodec:
    """Each model attribute in its own field; nested values as JSON text."""

    def decoder(self, model: type[BaseModel] | None) -> Callable[[dict[str, str]], Any]:
        if model is None:
            return _raw
        validate = model.model_validate

        def decode(fields: dict[str, str]) -> Any:
            try:
                return validate(fields)
            except ValidationError as exc:
                raise PayloadError(f"invalid {model.__name__}: {_describe(exc)}", exc) from None

        return decode

    def encode(self, payload: BaseModel) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in payload.model_dump(mode="json").items():
            if value is None:
                continue
            out[key] = value if isinstance(value, str) else json.dumps(value)
        return out


class JsonCodec:
    """The whole model as JSON in one field (``json_field``, default ``payload``)."""

    def __init__(self, field: str = "payload") -> None:
        self.field = field

    def decoder(self, model: type[BaseModel] | None) -> Callable[[dict[str, str]], Any]:
        field = self.field

        def decode(fields: dict[str, str]) -> Any:
            text = fields.get(field)
            if text is None:
                raise PayloadError(f"field {field!r} is missing (json codec)")
            if model is None:
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise PayloadError(f"field {field!r} is not JSON: {exc}", exc) from None
            try:
                return model.model_validate_json(text)
            except ValidationError as exc:
                raise PayloadError(f"invalid {model.__name__}: {_describe(exc)}", exc) from None

        return decode

    def encode(self, payload: BaseModel) -> dict[str, str]:
        return {self.field: payload.model_dump_json()}


def codec_for(name: Literal["flat", "json"], json_field: str = "payload") -> Codec:
    return JsonCodec(json_field) if name == "json" else FlatCodec()
