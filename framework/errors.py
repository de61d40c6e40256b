"""Every exception Streamboot raises on purpose, under one base: each names the thing that
is wrong, so a log line is enough, and ``except StreambootError`` catches all of them.

Those that stand for a bad value also derive from the built-in a caller would expect
(``ValueError``, ``TypeError``, ``RuntimeError``), so pydantic validators and existing
``except ValueError`` code keep working.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from redis.exceptions import ResponseError


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
    """A listener's ``handler`` cannot be imported, found or constructed."""


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


class LockNotAcquired(StreambootError):
    """Someone else holds the lock: for a request, a duplicate."""


# -- operator commands ------------------------------------------------------------------
class NotFound(StreambootError):
    """What an operator command was asked about does not exist (exit 1)."""


class UsageError(StreambootError):
    """An operator command was given something it cannot use (exit 2)."""


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
# ... and those that mean "never, as configured": no retry heals them.
_UNKNOWN_COMMAND = ("ERR unknown command", "ERR unknown subcommand", "ERR Unknown subcommand",
                    "ERR syntax error")
_NO_SUCH_DB = ("DB index is out of range", "ERR DB index is out of range")
_SCRIPT_NOPERM = ("The user executing the script can't run this command",
                  "ERR The user executing the script can't run this command")
"""What a script's command refused by ACL returns (the server does not say which command)."""


class StartupError(StreambootError):
    """What makes ``run`` give up at start: no retry would heal it."""


def pool_exhausted(exc: BaseException) -> bool:
    """The client's own connection pool had no free connection in time: not Redis down."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import MaxConnectionsError

    return isinstance(exc, MaxConnectionsError) or (
        isinstance(exc, RedisConnectionError) and str(exc) == "No connection available.")


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a connection error (redis-py wraps it): a certificate that
    does not verify, one the server refuses or requires — no retry heals those."""
    seen: BaseException | None = exc
    for _ in range(10):  # a chain of causes, bounded
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def is_permanent(exc: BaseException) -> bool:
    """Wrong credentials, a permission the user lacks, a key that is not a stream, a
    command the server does not have: retrying cannot help until someone changes them."""
    from redis.exceptions import (
        AuthenticationError,
        AuthenticationWrongNumberOfArgsError,
        AuthorizationError,
        NoPermissionError,
    )

    if isinstance(exc, AuthenticationError | AuthorizationError | NoPermissionError
                  | AuthenticationWrongNumberOfArgsError | WrongTypeError):
        return True
    if tls_failure(exc) is not None:
        return True
    return isinstance(exc, ResponseError) and server_error_text(exc).startswith(
        (*_UNKNOWN_COMMAND, *_NO_SUCH_DB, *_SCRIPT_NOPERM, "NOPERM", "WRONGPASS", "NOAUTH"))


def is_transient(exc: BaseException) -> bool:
    """Connection refused/reset/timeout and the server's temporary refusals (never an
    authentication failure, which redis-py raises as a kind of connection error)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if is_permanent(exc):
        return False
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError):
        return True
    return isinstance(exc, ResponseError) and server_error_text(exc).startswith(_TRANSIENT_PREFIXES)


def _reason(exc: BaseException) -> str:
    """redis-py says "Error 111 connecting to host:port. Connect call failed (…)": the
    errno says it shorter ("connection refused")."""
    text = str(exc)
    found = re.match(r"Error (\d+) connecting", text)
    if found:
        return os.strerror(int(found.group(1))).lower()
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return "timed out"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return text or type(exc).__name__


def describe_unavailable(exc: BaseException, address: str = "") -> str:
    """What a transient failure was, for the line that says it is retried."""
    where = f" at {address}" if address else ""
    if pool_exhausted(exc):
        return ("every pooled connection is busy (redis.max_connections); Redis itself "
                f"may be fine ({type(exc).__name__}: {exc})")
    if isinstance(exc, ResponseError):
        return f"redis{where} is not ready ({server_error_text(exc)})"
    return f"cannot reach redis{where} ({_reason(exc)})"


TLS_RESET_HINT = ("; over TLS, a server that requires a client certificate resets the "
                  "connection of a client that has none (redis.tls.cert_file, key_file)")


def with_tls_hint(text: str, tls_without_client_cert: bool) -> str:
    """A reset over TLS without a client certificate may be the server refusing the client
    (TLS 1.3 sends that refusal after the handshake): say so on the line."""
    return text + TLS_RESET_HINT if tls_without_client_cert and "reset" in text else text


def describe_permanent(exc: BaseException, address: str = "") -> str:
    """What a permanent failure was, for the one line that ends a listener or ``run``."""
    from redis.exceptions import AuthenticationError, NoPermissionError

    where = f" at redis {address}" if address else ""
    if (tls := tls_failure(exc)) is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or str(tls)
        text = str(reason).replace("_", " ").lower()
        if "certificate required" in text:
            text += ": the server requires a client certificate"
        return (f"TLS handshake with redis {address or '?'} failed: {text} "
                "(check redis.tls: ca_file, cert_file, key_file)")
    text = server_error_text(exc) if isinstance(exc, ResponseError) else str(exc)
    if isinstance(exc, AuthenticationError) or text.startswith(("WRONGPASS", "NOAUTH")):
        return f"authentication failed{where}: {text}"
    if isinstance(exc, NoPermissionError) or text.startswith("NOPERM"):
        return f"permission denied{where}: {text}"
    if text.startswith(_SCRIPT_NOPERM):
        return (f"permission denied{where}: one of Streamboot's scripts runs a command this "
                "user may not run (ACL LOG names it); grant the commands of the ACL line in "
                "docs/operations.md, Least privilege")
    if text.startswith(_NO_SUCH_DB):
        return (f"the database number in redis.url does not exist{where} ({text}; the "
                "server's `databases` setting bounds it, 16 by default)")
    if text.startswith(_UNKNOWN_COMMAND):
        return (f"the server{where} does not support a command Streamboot needs ({text}); "
                f"it needs Redis {MIN_SERVER} or newer")
    return text


MIN_SERVER = "7.0"
"""The oldest server the framework runs on (XAUTOCLAIM's deleted ids, entries-read, lag)."""


def server_too_old(version: str) -> bool:
    """``redis_version`` as INFO reports it (Valkey reports a Redis-compatible one)."""
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False  # an unknown scheme: let the commands themselves tell
    return parts < tuple(int(p) for p in MIN_SERVER.split("."))
