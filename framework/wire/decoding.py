"""Which entries can be handed to a handler as text, and how their bytes survive.

Field names and values are bytes in Redis. Streamboot's connections decode them as UTF-8
with ``surrogateescape``: a byte that is not UTF-8 becomes a lone surrogate (``\\udce9``)
instead of an exception that would fail the whole read — and every later read of the same
batch. Encoding such a string the same way gives back the original bytes, so an entry can
be dead-lettered exactly as it came. What cannot become a handler's ``dict[str, str]`` or
payload faithfully — a name or value that is not UTF-8, a field name given twice — is
reported by :func:`undecodable` and dead-lettered by the listener instead of handled.
"""

from __future__ import annotations

from typing import Any

from .records import StreamEntry

WIRE_ERRORS = "surrogateescape"
"""The codec error handler of every connection Streamboot reads entries with."""

_SHOWN = 60


def to_wire(text: str | bytes) -> bytes:
    """The bytes a decoded string came from (lone surrogates back to their raw bytes)."""
    return text if isinstance(text, bytes) else text.encode("utf-8", WIRE_ERRORS)


def from_wire(value: Any) -> Any:
    """A raw (undecoded) reply, decoded the way the listener's connections decode."""
    if isinstance(value, bytes):
        return value.decode("utf-8", WIRE_ERRORS)
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    return value


def is_text(text: str) -> bool:
    """True when ``text`` is valid UTF-8 as received (no escaped raw bytes in it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(text: str) -> str:
    """A short, printable form of a possibly binary string, for logs and dead letters."""
    data = to_wire(text)
    more = "…" if len(data) > _SHOWN else ""
    return f"{data[:_SHOWN]!r}{more}"


def undecodable(entry: StreamEntry) -> str | None:
    """Why ``entry`` cannot be handed over as text, or None when it can.

    The common case (every name and value ASCII) costs one C-level pass over the strings.
    """
    pairs = entry.raw
    if pairs is None:
        pairs = entry.pairs
    elif len(pairs) != 2 * len(entry.fields):
        names = pairs[0::2]
        twice = next(n for n in names if names.count(n) > 1)
        return f"field name {shown(twice)} appears more than once"
    if all(map(str.isascii, pairs)):
        return None
    for index, text in enumerate(pairs):
        if not is_text(text):
            what = "field name" if index % 2 == 0 else f"value of field {shown(pairs[index - 1])}"
            return f"{what} is not UTF-8: {shown(text)}"
    return None
