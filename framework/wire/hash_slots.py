"""Redis Cluster hash slots: which keys may be touched together by one script."""

from __future__ import annotations

from redis.crc import key_slot


def hash_tag(key: str) -> str | None:
    """The ``{tag}`` part Redis Cluster hashes instead of the whole key, if any."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def same_slot(*keys: str) -> bool:
    return len({slot(k) for k in keys}) <= 1


def colocated(key: str, suffix: str) -> str:
    """A key named after ``key`` that lives in the same slot: ``orders`` → ``{orders}:dlq``."""
    return f"{key}{suffix}" if hash_tag(key) is not None else f"{{{key}}}{suffix}"
