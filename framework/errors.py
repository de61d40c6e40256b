"""The framework's exceptions: each names the thing that is wrong, so a log line is enough."""

from __future__ import annotations

from redis.exceptions import ResponseError


class StreambootError(Exception):
    """Base of every error the framework raises on purpose."""


class NoGroupError(StreambootError):
    """The stream or its consumer group does not exist (deleted, expired, flushed)."""

    def __init__(self, stream: str, group: str, detail: str = "") -> None:
        super().__init__(
            f"consumer group {group!r} on stream {stream!r} does not exist"
            + (f" ({detail})" if detail else "")
        )
        self.stream = stream
        self.group = group


class WrongTypeError(StreambootError):
    """The key exists but is not a stream: a naming clash no retry can fix."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} holds a value that is not a stream (WRONGTYPE)")
        self.key = key


class MissingStreamError(StreambootError):
    """A write that must not create the stream (``NOMKSTREAM``) found none: nothing was
    written. A rotated period's stream is created with its group and TTL, never by XADD."""

    def __init__(self, key: str) -> None:
        super().__init__(f"stream {key!r} does not exist; the entry was not written")
        self.key = key


class HandlerTimeout(StreambootError):
    """A handler ran past ``handler_timeout``: it was cancelled (a sync one's thread was
    abandoned) and the delivery counts as failed."""

    def __init__(self, entry_id: str, seconds: float) -> None:
        super().__init__(f"handler did not finish entry {entry_id} within "
                         f"handler_timeout ({seconds:g}s)")
        self.entry_id = entry_id


class HandlerResolutionError(StreambootError):
    """A listener's ``handler`` cannot be imported, found or constructed."""


def server_error_text(exc: ResponseError) -> str:
    """The server's own message, without the prefix redis-py adds inside a pipeline."""
    text = str(exc)
    marker = "of pipeline caused error: "
    if marker in text:
        text = text.split(marker, 1)[1].strip("()',\"")
    return text


def translate_response_error(exc: ResponseError, key: str, group: str = "") -> Exception:
    """Map the server's error code to a specific exception; others pass through.

    ``UNBLOCKED`` is what a blocked XREADGROUP gets when its stream is deleted: for the
    reader it is the same event as NOGROUP.
    """
    text = server_error_text(exc)
    if text.startswith(("NOGROUP", "UNBLOCKED")) or "requires the key to exist" in text:
        return NoGroupError(key, group, text)
    if text.startswith("WRONGTYPE"):
        return WrongTypeError(key)
    return exc


# Server replies that mean "not now", not "never": the loop backs off and retries.
_TRANSIENT_PREFIXES = ("LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def pool_exhausted(exc: BaseException) -> bool:
    """The client's own connection pool had no free connection in time: not Redis down."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import MaxConnectionsError

    return isinstance(exc, MaxConnectionsError) or (
        isinstance(exc, RedisConnectionError) and str(exc) == "No connection available.")


def describe_unavailable(exc: BaseException) -> str:
    """What a transient failure was, for the log line that says it is retried."""
    if pool_exhausted(exc):
        return ("every pooled connection is busy (redis.max_connections); Redis itself "
                f"may be fine ({type(exc).__name__}: {exc})")
    return f"redis unavailable ({type(exc).__name__}: {exc})"


def is_transient(exc: BaseException) -> bool:
    """Connection refused/reset/timeout and the server's temporary refusals."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError):
        return True
    return isinstance(exc, ResponseError) and server_error_text(exc).startswith(_TRANSIENT_PREFIXES)
