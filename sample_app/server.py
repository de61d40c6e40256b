"""The API server's process: uvicorn serving sample_app/web.py on a socket bound here.

The socket is bound before uvicorn starts (``--fd``), so its port is known and free
without a race, and requests sent before uvicorn is ready wait in the listen backlog
instead of being refused. It runs in a session of its own: a Ctrl-C at the terminal
reaches the sample, which then stops the server after its users have stopped, rather than
the server dropping requests in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
READY_WITHIN = 30.0
"""Seconds the server has to answer /healthz (it reaches Redis first), else the run ends."""
STOP_WITHIN = 15.0


class ApiServerFailed(RuntimeError):
    """The API server did not start (its own output, above, says why)."""


@dataclass
class ApiServer:
    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    async def start(cls, config: Path) -> ApiServer:
        """Spawn it, then wait until it answers /healthz (bounded: READY_WITHIN)."""
        server = cls.spawn(config)
        try:
            await server._ready()
        except BaseException:
            server.stop()
            raise
        return server

    @classmethod
    def spawn(cls, config: Path) -> ApiServer:
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(("127.0.0.1", 0))
        listening.listen(1024)
        port = listening.getsockname()[1]
        env = {**os.environ, "SAMPLE_CONFIG": str(config), "SAMPLE_PARENT": str(os.getpid()),
               "STREAMBOOT_LOGGING__LEVEL": os.environ.get("SAMPLE_API_LOG_LEVEL", "ERROR")}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "sample_app.web:app",
                 "--fd", str(listening.fileno()), "--log-level", "warning",
                 "--no-access-log", "--timeout-graceful-shutdown", "10"],
                pass_fds=(listening.fileno(),), env=env, cwd=ROOT, start_new_session=True)
        finally:
            listening.close()  # uvicorn has its own copy
        return cls(process, f"http://127.0.0.1:{port}")

    async def _ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_WITHIN
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while loop.time() < deadline:
                if self.process.poll() is not None:
                    raise ApiServerFailed(f"the API server exited with {self.process.returncode}"
                                          " before serving")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise ApiServerFailed(f"the API server at {self.url} was not healthy within "
                              f"{READY_WITHIN:g}s")

    def stop(self) -> int | None:
        """SIGTERM: uvicorn finishes the requests in flight, then its lifespan ends."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
