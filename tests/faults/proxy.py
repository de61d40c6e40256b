"""A TCP proxy between a process and Redis that can fail the way networks fail.

``silence()``: the connections open now stop carrying anything, both ways, and never
close — a lost NAT or conntrack entry: new connections work, old ones never answer.
``reset()``: the connections open now are closed abruptly (RST). ``refuse(True)``: new
connections are refused. It runs its own event loop in a daemon thread, so tests that
drive subprocesses synchronously can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any


class _Pair:
    def __init__(self, client: asyncio.StreamWriter, server: asyncio.StreamWriter) -> None:
        self.client, self.server = client, server
        self.silent = False


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy",
                                        daemon=True)
        self._pairs: set[_Pair] = set()
        self._server: asyncio.base_events.Server | None = None
        self._refusing = False
        self.port = 0
        self.accepted = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        self._call(self._start()).result(5)
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self._call(self._close()).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def silence(self) -> int:
        """Existing connections go silent; returns how many."""
        return asyncio.run_coroutine_threadsafe(self._silence(), self._loop).result(5)

    def reset(self) -> int:
        """Existing connections are reset (RST); returns how many."""
        return asyncio.run_coroutine_threadsafe(self._reset(), self._loop).result(5)

    def refuse(self, refusing: bool) -> None:
        self._refusing = refusing

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _abort(writer)
            return
        self.accepted += 1
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(self._pump(reader, up_writer, pair),
                             self._pump(up_reader, writer, pair), return_exceptions=True)
        self._pairs.discard(pair)
        for end in (writer, up_writer):
            end.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: _Pair) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                if not pair.silent:
                    writer.close()
                return
            if pair.silent:
                continue  # swallowed: the other side never hears of it
            writer.write(data)
            await writer.drain()

    async def _silence(self) -> int:
        for pair in self._pairs:
            pair.silent = True
        return len(self._pairs)

    async def _reset(self) -> int:
        pairs = list(self._pairs)
        for pair in pairs:
            _abort(pair.client)
            _abort(pair.server)
        return len(pairs)

    async def _close(self) -> None:
        await self._reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST: SO_LINGER with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
