"""Every exception Streamboot raises on purpose, under one base: each names the thing that
is wrong, so a log line is enough, and ``except StreambootError`` catches all of them.

Those that stand for a bad value also derive from the built-in a caller would expect
(``ValueError``, ``TypeError``, ``RuntimeError``), so pydantic validators and existing
``except ValueError`` code keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class StreambootError(Exception):
    """Base of every error the framework raises on purpose."""


# -- the application file ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in an application file: where, and what."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(StreambootError):
    """Every problem found in one application file, reported together."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MissingVariableError(StreambootError, ValueError):
    """A ``${VAR}`` without default whose variable is unset."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(
            f"environment variable {name} is not set (used at {path}); "
            f"set it or write ${{{name}:default}}"
        )
        self.name = name
        self.path = path


class InvalidDuration(StreambootError, ValueError):
    """A duration (``500ms``, ``30s``, ``5m``, ``1h``) that cannot be read."""


class DuplicateListenerError(StreambootError, ValueError):
    """Two listeners registered under one name: the second would silently replace the
    first."""


class HandlerResolutionError(StreambootError):
    """A listener's ``handler`` (or a middleware) cannot be imported, found or constructed."""

    key: str | None = None
    """The file's key to fix, when it is not the listener's own (``container.middleware``)."""


# -- entries and handlers ---------------------------------------------------------------
class PayloadError(StreambootError):
    """The entry's fields cannot become the handler's payload; retrying cannot help."""

    def __init__(self, message: str, cause: Exception | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class UnpublishableError(StreambootError, TypeError):
    """A payload of a type no codec can write (give a model, a dataclass or a mapping)."""


class NoMarkerError(StreambootError, ValueError):
    """An ``IdempotentScript`` called for an entry without an idempotency marker."""


class MalformedDeadLetter(StreambootError, ValueError):
    """A dead-letter entry without the fields that say where it came from."""


class Backpressure(StreambootError):
    """The stream is over its declared length or lag limit: the publish was refused, not
    dropped. Retry later, or shed load upstream."""


class PublishUnavailable(StreambootError):
    """Redis stayed unreachable (or without a primary) for the whole of
    ``publish.retry_for``. The entries of that write were not written — unless a reply
    was lost on the way back, then they may have been; ``__cause__`` is the last error."""


class NotDurableError(StreambootError):
    """Entries written on the primary but acknowledged by fewer replicas than
    ``publish.durability.replicas`` within its timeout: a failover now could lose them.
    They are not undone — ``ids`` are in the stream — so publishing them again may give
    duplicates (consumers' idempotency takes care of those)."""

    def __init__(self, keys: list[str], ids: list[str], acknowledged: int, required: int,
                 timeout_ms: int, written: list[str] | None = None,
                 setting: str = "publish.durability", what: str | None = None) -> None:
        """``what``: the subject when it is not entries written (an IdempotentScript's
        effect and marker)."""
        shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
        where = ", ".join(repr(k) for k in keys)
        one = len(ids) == 1 or what is not None
        subject = what or (f"{len(ids)} {'entry' if one else 'entries'} written to {where} "
                           f"({shown})")
        super().__init__(
            f"{subject} {'was' if one else 'were'} acknowledged by {acknowledged} "
            f"of the {required} replica{'' if required == 1 else 's'} required within "
            f"{timeout_ms}ms ({setting}): a failover now could lose {'it' if one else 'them'}")
        self.keys = keys
        self.ids = ids
        self.acknowledged = acknowledged
        self.required = required
        self.written = written if written is not None else ids
        """Every id this publish wrote, in order (the durable ones too)."""


class LockNotAcquired(StreambootError):
    """Someone else holds the lock: for a request, a duplicate."""


# -- admin commands --------------------------------------------------------------------
class NotFound(StreambootError):
    """What an admin command was asked about does not exist (exit 1)."""


class UsageError(StreambootError):
    """An admin command was given something it cannot use (exit 2)."""


# -- the throwaway server ---------------------------------------------------------------
INSTALL_HINT = (
    "redis-server was not found. Install it with:\n"
    "    sudo apt-get update && sudo apt-get install -y redis-server\n"
    "or, without root, the embedded Valkey server:  pip install 'streamboot[embedded]'"
)
REDIS_ONLY_HINT = (
    "STREAMBOOT_SERVER=redis, and redis-server is not on PATH. Install it with:\n"
    "    sudo apt-get update && sudo apt-get install -y redis-server\n"
    "or unset STREAMBOOT_SERVER to use the embedded Valkey server when it is installed"
)
EMBEDDED_HINT = (
    "the embedded Valkey server is not installed (STREAMBOOT_SERVER=valkey). Install it "
    "with:  pip install 'streamboot[embedded]'"
)


class RedisServerError(StreambootError, RuntimeError):
    """A throwaway redis-server (devserver.py) could not be started."""


class RedisServerNotFound(RedisServerError):
    """No server to start (no ``redis-server`` on PATH, no embedded one): the message says
    how to install one."""

    def __init__(self, choice: str = "auto") -> None:
        super().__init__({"valkey": EMBEDDED_HINT, "redis": REDIS_ONLY_HINT}.get(choice,
                                                                             INSTALL_HINT))


# -- Redis ------------------------------------------------------------------------------


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


class BatchEntryError(StreambootError):
    """An entry a batch handler reported as failed with a reason in text (not an
    exception): the reason is the message, as a dead letter's error shows it."""


class StartupError(StreambootError):
    """What makes ``run`` give up at start: no retry would heal it."""
