"""A minimal asyncio HTTP server for ``/metrics`` and ``/healthz`` (no framework needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry

from ..errors import StartupError


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
