"""The application file as an AsyncAPI 3.0 document: its streams, what travels in them,
who receives it (``streamboot asyncapi app.yaml``).

Pure: the settings and each listener's payload type in, a JSON-ready mapping out (the
command imports the handlers and writes the file). The mapping:

- **servers**: where Redis is (the URL without its password; each Sentinel of a Sentinel
  setup; a Cluster's seed node);
- **channels**: one per stream key — a partitioned listener's partitions are one channel
  each, a rotated listener's periods one channel with a ``period`` parameter — and one per
  dead-letter stream. AsyncAPI reads ``{…}`` in an address as a parameter, and a Redis hash
  tag is not one: a key with braces (every partition's, ``{orders:p0}``) has no
  ``address`` (AsyncAPI's "unknown") and is given exactly in ``x-redis-key``, which every
  channel has;
- **operations**: each listener's group ``receive``s on each of its channels, and ``send``s
  what it dead-letters;
- **components**: a message per payload type, its JSON Schema from the model (pydantic's),
  nested models under ``components.schemas``; the dead letter's fields.

The payload schema is the model's; how it travels is the codec's: ``flat`` — each property
one field of the entry, its value as text (nested values as JSON text), said in the
message's ``x-streamboot-codec``; ``json`` — the model as JSON in one field
(``x-streamboot-field``), ``contentType: application/json``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, TypeAdapter

from ..codecs import is_raw
from ..config.durations import format_duration
from ..config.models import AppSettings, ListenerSettings
from ..listener.dead_letters import DEAD_LETTER_FIELDS
from ..partitions.keys import partition_key
from ..wire.hash_slots import colocated

ASYNCAPI_VERSION = "3.0.0"
REF = "#/components/schemas/{model}"
_ID = re.compile(r"[^\w.\-]")


def channel_id(name: str) -> str:
    """A listener's name as a channel or operation id (AsyncAPI's ``[\\w.-]``)."""
    return _ID.sub("_", name)


def _address(key: str) -> str | None:
    """The channel address of a key, or None where braces would read as a parameter."""
    return None if "{" in key or "}" in key else key


def payload_schema(payload_type: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a payload type; nested models go to ``schemas`` (the document's
    ``components.schemas``), referenced from it."""
    if is_raw(payload_type):
        return {"type": "object", "additionalProperties": {"type": "string"},
                "description": "the entry's fields as they are, names and values text"}
    if isinstance(payload_type, type) and issubclass(payload_type, BaseModel):
        schema = payload_type.model_json_schema(ref_template=REF)
    else:
        schema = TypeAdapter(payload_type).json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    return schema


def _message_name(payload_type: Any, listener: str) -> str:
    if is_raw(payload_type):
        return f"{channel_id(listener)}.fields"
    return channel_id(str(getattr(payload_type, "__name__", listener)))


def _servers(settings: AppSettings) -> dict[str, Any]:
    redis = settings.redis
    if redis.sentinel is not None:
        nodes = redis.sentinel.nodes if isinstance(redis.sentinel.nodes, list) \
            else [redis.sentinel.nodes]
        return {f"sentinel-{n}": {
            "host": node, "protocol": "redis",
            "description": f"a Redis Sentinel: the primary is the one it names "
                           f"{redis.sentinel.master!r}"} for n, node in enumerate(nodes)}
    url = urlsplit(redis.safe_url)
    server: dict[str, Any] = {"host": url.netloc.rpartition("@")[2] or "localhost",
                              "protocol": url.scheme or "redis"}
    if url.path not in ("", "/"):
        server["pathname"] = url.path
    if redis.cluster:
        server["description"] = "a node of the Redis Cluster (any node leads to all)"
    return {"redis": server}


def _keys(listener: ListenerSettings) -> list[tuple[str, str]]:
    """(channel suffix, key or key format) of each channel the listener reads."""
    base = listener.rotation.key_format if listener.rotation is not None else listener.stream
    if listener.partitions == 1:
        return [("", base)]
    return [(f".p{i}", partition_key(base, i)) for i in range(listener.partitions)]


def _channel(key: str, listener: ListenerSettings, messages: dict[str, Any],
             description: str) -> dict[str, Any]:
    channel: dict[str, Any] = {"messages": messages, "description": description}
    if listener.rotation is not None:
        channel["x-redis-key-format"] = key
        channel["x-streamboot-rotation"] = {
            "period": format_duration(listener.rotation.period),
            "timezone": listener.rotation.timezone}
        if "{" in key or "}" in key:
            channel["address"] = None
        else:  # the strftime fields, from the first to the last: the period parameter
            first, last = key.index("%"), key.rindex("%") + 2
            channel["address"] = f"{key[:first]}{{period}}{key[last:]}"
            channel["parameters"] = {"period": {
                "description": f"the period's start as {key[first:last]!r} "
                               f"({listener.rotation.timezone}): one stream per period"}}
    else:
        channel["address"] = _address(key)
        channel["x-redis-key"] = key
    return channel


def asyncapi_document(settings: AppSettings, payload_types: Mapping[str, Any],
                      handlers: Mapping[str, str] | None = None,
                      version: str = "1.0.0") -> dict[str, Any]:
    """The document of ``settings``' listeners; ``payload_types``: listener name → its
    handler's payload type; ``handlers``: listener name → the handler's kind
    (``StreamHandler`` or ``BatchHandler``), shown on its operations."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    names: dict[str, Any] = {}  # message name -> the payload type and codec it describes
    dead_letter = {"name": "DeadLetter", "title": "A dead letter",
                   "summary": "an entry that could not be handled, with why",
                   "payload": _dead_letter_schema()}
    for name, listener in settings.listeners.items():
        payload_type = payload_types.get(name)
        message = _message_name(payload_type, name)
        described = (id(payload_type), listener.codec,
                     listener.json_field if listener.codec == "json" else None)
        if message in names and names[message] != described:
            message = f"{message}.{channel_id(name)}"  # another type, or another codec
        if message not in names:
            names[message] = described
            messages[message] = _message(message, payload_type, listener, schemas)
        kind = (handlers or {}).get(name, "StreamHandler")
        for suffix, key in _keys(listener):
            cid = channel_id(name) + suffix
            where = f" (partition {suffix[2:]} of {listener.partitions})" if suffix else ""
            channels[cid] = _channel(
                key, listener, {message: {"$ref": f"#/components/messages/{message}"}},
                f"listener {name!r}{where}: stream {key!r}, group {listener.group!r}"
                + ("" if listener.enabled else " (disabled)"))
            operations[f"{cid}.receive"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [{"$ref": f"#/channels/{cid}/messages/{message}"}],
                "summary": f"group {listener.group!r} handles it with {listener.handler}",
                "x-streamboot-group": listener.group, "x-streamboot-handler": kind,
                **({"x-streamboot-ordering-key": listener.ordering_key}
                   if listener.ordering_key else {}),
                **({"x-streamboot-idempotency-key": listener.idempotency.key}
                   if listener.idempotency else {})}
            dlq = _dead_letter_key(listener, key, bool(suffix))
            if dlq is None:
                continue
            channels[f"{cid}.dlq"] = _dead_letter_channel(dlq, key, listener)
            operations[f"{cid}.dead_letter"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{cid}.dlq"},
                "messages": [{"$ref": f"#/channels/{cid}.dlq/messages/DeadLetter"}],
                "summary": f"what group {listener.group!r} could not handle, with why"}
    if any(cid.endswith(".dlq") for cid in channels):
        messages["DeadLetter"] = dead_letter
    components: dict[str, Any] = {"messages": messages}
    if schemas:
        components["schemas"] = schemas
    return {"asyncapi": ASYNCAPI_VERSION,
            "info": {"title": settings.application.name, "version": version,
                     "description": "Generated by `streamboot asyncapi` from the application "
                                    "file: its streams, their payloads and who handles them."},
            "servers": _servers(settings), "channels": channels, "operations": operations,
            "components": components}


def _dead_letter_channel(dlq: str, key: str, listener: ListenerSettings) -> dict[str, Any]:
    """A rotated listener's dead letters are per period too: their key is a format."""
    messages = {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}}
    if listener.rotation is None:
        return {"address": _address(dlq), "x-redis-key": dlq,
                "description": f"the dead letters of {key!r}", "messages": messages}
    channel = _channel(dlq, listener, messages, f"the dead letters of each period of {key!r}")
    del channel["x-streamboot-rotation"]
    return channel


def _dead_letter_key(listener: ListenerSettings, key: str, partitioned: bool) -> str | None:
    if listener.dead_letter_stream is None:
        return None
    if listener.rotation is not None or partitioned:
        return colocated(key, ":dlq")
    return listener.dead_letter_stream


def _message(name: str, payload_type: Any, listener: ListenerSettings,
             schemas: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"name": name, "payload": payload_schema(payload_type, schemas)}
    title = getattr(payload_type, "__name__", None)
    if title and not is_raw(payload_type):
        message["title"] = title
    if listener.codec == "json":
        message["contentType"] = "application/json"
        message["x-streamboot-codec"] = "json"
        message["x-streamboot-field"] = listener.json_field
    else:
        message["x-streamboot-codec"] = "flat"
        message["description"] = ("each property is one field of the entry, its value as "
                                  "text (nested values as JSON text)")
    return message


def _dead_letter_schema() -> dict[str, Any]:
    properties = {field: {"type": "string", "description": what}
                  for field, what in DEAD_LETTER_FIELDS.items()}
    return {"type": "object", "properties": properties, "required": sorted(properties),
            "additionalProperties": {"type": "string"},
            "description": "the original entry's fields as they were, then the dead "
                           "letter's own (dlq_*; dlq_fields says how many pairs are the "
                           "entry's)"}
