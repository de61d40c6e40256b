"""Before any listener starts: reach Redis, retrying what heals, refusing what will not.

A worker that logs "started: 2 listener(s)" and then retries a wrong password for ever
looks healthy to everyone but the entries piling up. So ``run`` first reaches the server:
connection refused, a timeout, ``LOADING`` are retried with one line that says what and
where; a wrong password, a missing permission, a server too old end the start with
:class:`~framework.errors.StartupError` — one line, and ``run`` exits 3.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger

from ..errors import StartupError
from ..wire.operator import RedisOperator
from ..wire.reconnect import ReconnectBackoff
from ..wire.redis_errors import (
    MIN_SERVER,
    describe_permanent,
    describe_unavailable,
    is_permanent,
    is_transient,
    no_primary_found,
    permission_denied,
    server_too_old,
    with_tls_hint,
)


async def reach_redis(operator: RedisOperator, stop: asyncio.Event,
                      backoff: ReconnectBackoff | None = None,
                      tls_without_client_cert: bool = False, timeout: float | None = None,
                      waiting: Callable[[str | None], None] = lambda said: None) -> bool:
    """PING until it answers; False when ``stop`` was set while waiting.

    ``tls_without_client_cert``: the URL is rediss:// and no client certificate is set. A
    server that requires one may simply reset the connection (TLS 1.3 sends its refusal
    after the handshake), which looks like any other reset: the retry line says so.
    ``timeout`` (``redis.startup_timeout``): past it, :class:`StartupError`. ``waiting``
    is told what each failed attempt met (``None`` once Redis answered): /healthz says it
    meanwhile."""
    backoff = backoff or ReconnectBackoff(initial=0.5, cap=operator.reconnect_cap)
    address = operator.address
    deadline = None if timeout is None else time.monotonic() + timeout
    while not stop.is_set():
        try:
            await operator.ping()
        except Exception as exc:
            if is_permanent(exc):
                raise StartupError(describe_permanent(exc, address)) from None
            if no_primary_found(exc) and (wrong := await operator.unknown_primary_name()):
                raise StartupError(wrong) from None
            if not is_transient(exc):
                raise
            delay = backoff.next_delay()
            said = with_tls_hint(describe_unavailable(exc, address), tls_without_client_cert)
            if deadline is not None and time.monotonic() >= deadline:
                raise StartupError(f"{said}: gave up after {timeout:g}s "
                                   "(redis.startup_timeout)") from None
            if deadline is not None:  # the last wait ends at the deadline, not past it
                delay = max(0.0, min(delay, deadline - time.monotonic()))
            waiting(f"waiting for redis at {address} to answer (last: {said})")
            logger.warning("{}, retrying in {:.1f}s", said, delay)
            await backoff.wait(delay, stop)
            continue
        waiting(None)
        await _check_version(operator, address)
        return True
    return False


async def _check_version(operator: RedisOperator, address: str) -> None:
    try:
        version = await operator.server_version()
    except Exception as exc:
        if permission_denied(exc):
            return  # INFO is not granted: the commands themselves will say if one is missing
        raise
    if version and server_too_old(version):
        raise StartupError(f"the server at {address} is Redis {version}: Streamboot needs "
                           f"{MIN_SERVER} or newer (XAUTOCLAIM's deleted ids, group lag)")
