"""Stream-id arithmetic (``<ms>-<seq>``), in one place."""

from __future__ import annotations


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def is_id(text: str) -> bool:
    """``<ms>`` or ``<ms>-<seq>``, as a command line or a file may give one."""
    ms, _, seq = text.partition("-")
    return ms.isdigit() and (not seq or seq.isdigit())


def format_id(parts: tuple[int, int]) -> str:
    return f"{parts[0]}-{parts[1]}"


def id_key(entry_id: str) -> tuple[int, int]:
    """Sort key: ids order by their numbers, not as text (``9-0`` < ``10-0``)."""
    return parse_id(entry_id)


def after(entry_id: str) -> str:
    """The smallest id greater than ``entry_id``."""
    ms, seq = parse_id(entry_id)
    return format_id((ms, seq + 1))


def before(entry_id: str) -> str:
    """The largest id smaller than ``entry_id`` (``0-0`` for the start of the stream)."""
    ms, seq = parse_id(entry_id)
    if seq:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-18446744073709551615" if ms else "0-0"


def waited(entry_id: str, now: float) -> float:
    """Seconds since ``entry_id`` was published (the time in its id) at ``now`` (epoch
    seconds); 0 for an id from the future (clocks apart) or one given by hand (``1-0``
    reads as 1970: a real wait of decades is still reported, the clock cannot tell)."""
    ms = entry_id.partition("-")[0]
    return max(0.0, now - int(ms) / 1000) if ms.isdigit() else 0.0
