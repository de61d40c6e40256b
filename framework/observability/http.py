"""A minimal asyncio HTTP server for ``/metrics`` and ``/healthz`` (no framework needed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry

from ..errors import StartupError
from ..listener.poll import Subscription
from ..wire.operator import RedisOperator


async def health(operator: RedisOperator,
                 subscriptions: dict[str, Subscription]) -> dict[str, object]:
    """Healthy: Redis answers PING within 1s, and every listener makes progress.

    Progress is judged by what the listener is doing. Handling entries, however long they
    legitimately take, is progress — unless a handler runs past ``handler_timeout`` (one
    that ignored its cancellation, or a sync handler's abandoned thread still running):
    that is what a restart would cure. Otherwise the loop must have read within
    2 × ``poll_timeout`` (+1s): one stuck in backoff or ended by an error has not. And the
    entries it holds must have been renewed lately (listener/ownership.py): renewals
    that keep failing mean they may be taken over.
    """
    problems: list[str] = []
    try:
        await asyncio.wait_for(operator.ping(), 1.0)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else "no answer within 1s"
        problems.append(f"redis unreachable: {reason}")
    now = time.monotonic()
    for name, sub in subscriptions.items():
        limit = 2 * sub.spec.poll_timeout.total_seconds() + 1.0
        timeout = sub.spec.handler_timeout.total_seconds()
        late = sub.overdue()
        if sub.failure is not None:
            problems.append(f"listener {name} stopped: {sub.failure}")
        elif late:
            for entry_id, seconds in late:
                what = f"entry {entry_id}" if entry_id else "an abandoned sync thread"
                problems.append(f"listener {name}: handler on {what} running for "
                                f"{seconds:.1f}s (handler_timeout {timeout:g}s)")
        elif not sub.busy and now - sub.stats.last_poll > limit:
            problems.append(f"listener {name} has not polled for "
                            f"{now - sub.stats.last_poll:.1f}s (limit {limit:.1f}s)")
        keeper = sub.keeper
        unrenewed = keeper.late(time.perf_counter()) if keeper is not None else None
        if keeper is not None and unrenewed is not None:
            problems.append(
                f"listener {name}: ownership of {len(keeper.hand.in_hand)} entries not "
                f"renewed for {unrenewed:.1f}s (pending_scan.min_idle {keeper.min_idle:g}s"
                + (f"; last error: {keeper.last_error}" if keeper.last_error else "")
                + "): another consumer may take them over; none is started here until "
                "Redis confirms it")
    return {"healthy": not problems, "problems": problems}


class MetricsServer:
    def __init__(self, registry: CollectorRegistry,
                 healthz: Callable[[], Awaitable[dict[str, object]]],
                 refresh: Callable[[], Awaitable[None]] | None = None) -> None:
        """``refresh``: awaited before each /metrics is rendered (the supervisor fetches
        its workers' metrics then)."""
        self._registry = registry
        self._healthz = healthz
        self._refresh = refresh
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = request.split(b" ", 2)[1].decode() if request.count(b" ") >= 2 else "/"
            if path.startswith("/metrics"):
                if self._refresh is not None:
                    await self._refresh()
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
            elif path.startswith("/healthz"):
                report = await self._healthz()
                status = 200 if report["healthy"] else 503
                ctype, body = "application/json", json.dumps(report).encode()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                         + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve_or_refuse(server: MetricsServer, host: str, port: int) -> None:
    """Start ``server``, or say in one line why not: a port in use is a setting to change,
    not a traceback (a new user's trial met one)."""
    try:
        await server.start(host, port)
    except OSError as exc:
        raise StartupError(f"metrics cannot listen on {host}:{port}: "
                           f"{exc.strerror or exc} (set metrics.port to a free port, or 0 "
                           "for any)") from None
