"""How a Redis error is classified and said: transient (the loop backs off and retries),
permanent (no retry heals it: refused at once, in one line), or one of the server's codes
that means a specific thing here (NOGROUP, WRONGTYPE). The exceptions themselves are
``streamboot.errors``'; this is the only place that knows redis-py's."""

from __future__ import annotations

import os
import re
import ssl
from typing import TypeGuard

from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    ClusterDownError,
    MasterDownError,
    MaxConnectionsError,
    NoPermissionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import MasterNotFoundError

from ..errors import NoGroupError, WrongTypeError


def refused(exc: BaseException) -> TypeGuard[ResponseError]:
    """The server answered with an error reply (as opposed to not answering)."""
    return isinstance(exc, ResponseError)


def from_redis(exc: BaseException) -> bool:
    """Any failure redis-py raised: a refusal, or the connection."""
    return isinstance(exc, RedisError)


def permission_denied(exc: BaseException) -> bool:
    return isinstance(exc, NoPermissionError)


def connection_lost(exc: BaseException) -> bool:
    """The connection failed or timed out (a new one may work)."""
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)


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
    if _demoted_while_blocked(text):
        return exc  # not a deleted stream: the node became a replica (read_only)
    if text.startswith(("NOGROUP", "UNBLOCKED")) or "requires the key to exist" in text:
        return NoGroupError(key, group, text)
    if text.startswith("WRONGTYPE"):
        return WrongTypeError(key)
    return exc


# Server replies that mean "not now", not "never": the loop backs off and retries.
_TRANSIENT_PREFIXES = ("LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
# redis-py turns some of those codes into classes and drops the code from the text: the
# classes, with the code they stand for (for the line that says it).
_TRANSIENT_CLASSES: tuple[tuple[type[ResponseError], str], ...] = (
    (ReadOnlyError, "READONLY"), (TryAgainError, "TRYAGAIN"),
    (MasterDownError, "MASTERDOWN"), (ClusterDownError, "CLUSTERDOWN"))
# ... and those that mean "never, as configured": no retry heals them.
_UNKNOWN_COMMAND = ("ERR unknown command", "ERR unknown subcommand", "ERR Unknown subcommand",
                    "ERR syntax error")
_NO_SUCH_DB = ("DB index is out of range", "ERR DB index is out of range")
_SCRIPT_NOPERM = ("The user executing the script can't run this command",
                  "ERR The user executing the script can't run this command")
"""What a script's command refused by ACL returns (the server does not say which command)."""


def pool_exhausted(exc: BaseException) -> bool:
    """The client's own connection pool had no free connection in time: not Redis down."""

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

    if isinstance(exc, AuthenticationError | AuthorizationError | NoPermissionError
                  | AuthenticationWrongNumberOfArgsError | WrongTypeError):
        return True
    if tls_failure(exc) is not None or sentinels_refused_credentials(exc) is not None:
        return True
    return isinstance(exc, ResponseError) and server_error_text(exc).startswith(
        (*_UNKNOWN_COMMAND, *_NO_SUCH_DB, *_SCRIPT_NOPERM, "NOPERM", "WRONGPASS", "NOAUTH"))


def no_primary_found(exc: BaseException) -> bool:
    """Sentinel gave no primary: none of the Sentinels answered (their errors follow
    " : " in redis-py's text), or those that answered know no healthy primary by that name
    (a wrong ``redis.sentinel.master``, or a failover in progress)."""
    return isinstance(exc, MasterNotFoundError | AsyncMasterNotFoundError)


def sentinels_unreachable(exc: BaseException) -> bool:
    return no_primary_found(exc) and " : " in str(exc)


def sentinels_refused_credentials(exc: BaseException) -> str | None:
    """A Sentinel answered and refused this client's credentials (redis-py keeps each
    Sentinel's error in its MasterNotFoundError): "missing" (it requires a password and
    none was sent) or "wrong"; None otherwise. No retry heals either."""
    if not sentinels_unreachable(exc):
        return None
    text = str(exc).split(" : ", 1)[1]
    if _password_missing(text) or "NOAUTH" in text:
        return "missing"
    if "WRONGPASS" in text or "invalid username-password" in text \
            or "AuthenticationError" in text:
        return "wrong"
    return None


def _sentinel_nodes(exc: BaseException) -> str:
    nodes = dict.fromkeys(host_port(h, p) for h, p in
                          re.findall(r"host=([^,]+),port=(\d+)", str(exc)))
    return f" at {', '.join(nodes)}" if nodes else ""


def _demoted_while_blocked(text: str) -> bool:
    """What a blocked XREADGROUP gets when its server turns into a replica: ``UNBLOCKED
    force unblock from blocking operation, instance state changed (master -> replica?)``."""
    return text.startswith("UNBLOCKED") and "instance state changed" in text


def read_only(exc: BaseException) -> bool:
    """The server is a replica now (``READONLY``, or a blocked read ended by the
    demotion): after a failover, the node a fixed address points at was demoted. A write
    cannot succeed there until it is a primary again (or the address moves)."""
    if isinstance(exc, ReadOnlyError):
        return True
    if not isinstance(exc, ResponseError):
        return False
    text = server_error_text(exc)
    return text.startswith("READONLY") or _demoted_while_blocked(text)


def _transient_code(exc: BaseException) -> str | None:
    for kind, code in _TRANSIENT_CLASSES:
        if isinstance(exc, kind):
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """Connection refused/reset/timeout and the server's temporary refusals (never an
    authentication failure, which redis-py raises as a kind of connection error)."""

    if is_permanent(exc):
        return False
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError):
        return True
    if _transient_code(exc) is not None or read_only(exc):
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


def host_port(host: str, port: object) -> str:
    """``host:port`` for a message; an IPv6 address in brackets (``[::1]:26379``), as a
    URL writes it, so that where the address ends and the port begins stays readable."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_unavailable(exc: BaseException, address: str = "") -> str:
    """What a transient failure was, for the line that says it is retried."""
    where = f" at {address}" if address else ""
    if pool_exhausted(exc):
        return ("every pooled connection is busy (redis.max_connections); Redis itself "
                f"may be fine ({type(exc).__name__}: {exc})")
    if read_only(exc):
        return f"redis{where} is a read-only replica now (a failover?)"
    if no_primary_found(exc):
        named = re.match(r"No master found for ('[^']*')", str(exc))
        service = named.group(1) if named else "?"
        if sentinels_unreachable(exc):
            found = re.search(r"Error (\d+) connecting", str(exc))
            reason = (os.strerror(int(found.group(1))).lower() if found
                      else "timed out" if "Timeout" in str(exc) else "none answered")
            return (f"cannot reach any of the Sentinels{_sentinel_nodes(exc)} of primary "
                    f"{service} ({reason})")
        return (f"the Sentinels report no healthy primary {service} now (a failover in "
                "progress?)")
    if isinstance(exc, ResponseError):
        code = _transient_code(exc)
        text = server_error_text(exc)
        return f"redis{where} is not ready ({f'{code} {text}' if code else text})"
    return f"cannot reach redis{where} ({_reason(exc)})"


READ_ONLY_HINT = (
    "redis.url points at a node that is a replica now: after a failover the primary is "
    "elsewhere. Configure redis.sentinel (docs/configuration.md) so every connection "
    "finds the primary again, or point redis.url at an address that follows it (a managed "
    "endpoint); until then this process retries with backoff, in case the node is "
    "promoted again")


TLS_RESET_HINT = ("; over TLS, a server that requires a client certificate resets the "
                  "connection of a client that has none (redis.tls.cert_file, key_file)")


def with_tls_hint(text: str, tls_without_client_cert: bool) -> str:
    """A reset over TLS without a client certificate may be the server refusing the client
    (TLS 1.3 sends that refusal after the handshake): say so on the line."""
    return text + TLS_RESET_HINT if tls_without_client_cert and "reset" in text else text


def describe_permanent(exc: BaseException, address: str = "") -> str:
    """What a permanent failure was, for the one line that ends a listener or ``run``."""

    where = f" at redis {address}" if address else ""
    if (tls := tls_failure(exc)) is not None:
        reason = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or str(tls)
        text = str(reason).replace("_", " ").lower()
        if "certificate required" in text:
            text += ": the server requires a client certificate"
        return (f"TLS handshake with redis {address or '?'} failed: {text} "
                "(check redis.tls: ca_file, cert_file, key_file)")
    refusal = sentinels_refused_credentials(exc)
    if refusal == "missing":
        return (f"the Sentinels{_sentinel_nodes(exc)} require a password (set "
                "redis.sentinel.password; redis.password is the data nodes')")
    if refusal == "wrong":
        return (f"the Sentinels{_sentinel_nodes(exc)} refused the credentials of "
                "redis.sentinel (username, password): authentication failed")
    text = server_error_text(exc) if isinstance(exc, ResponseError) else str(exc)
    if _password_missing(text):
        at = f" at {address}" if address else ""
        return (f"redis{at} requires a password (set redis.password, or give it in the URL: "
                "redis://:PASSWORD@HOST:PORT — REDIS_URL or --url for the commands)")
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


def _password_missing(text: str) -> bool:
    """The server requires a password and none was sent: what RESP2 (``NOAUTH``) and
    RESP3's HELLO say to a client that did not authenticate."""
    return ("Authentication required" in text
            or "HELLO must be called with the client already authenticated" in text)


MIN_SERVER = "7.0"
"""The oldest server the framework runs on (XAUTOCLAIM's deleted ids, entries-read, lag)."""


def server_too_old(version: str) -> bool:
    """``redis_version`` as INFO reports it (Valkey reports a Redis-compatible one)."""
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False  # an unknown scheme: let the commands themselves tell
    return parts < tuple(int(p) for p in MIN_SERVER.split("."))
