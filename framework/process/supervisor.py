"""``streamboot run FILE --workers N``: N worker processes under one supervisor.

Python handles entries on one core per process; a supervisor is how one command uses
more. Each worker is a plain ``streamboot run`` of the same file, told its index
(worker_identity.py: a stable consumer name, its share of each partitioned listener). The
supervisor:

- **forwards signals**: workers run in process groups of their own, so a terminal's
  Ctrl-C reaches only the supervisor, which sends each worker one SIGTERM (a graceful
  stop); a second signal sends a second SIGTERM, which a worker takes as "force". Past the
  workers' own stop bound it kills what is left;
- **restarts** a worker that exits by itself, with backoff (restarts.py), except
  when the exit says a restart cannot help (the file, or cannot start): then it stops the
  others and exits with that code, rather than crash-looping;
- serves **one /metrics and /healthz** for all workers (worker_metrics.py);
- exits **0** when every worker stopped cleanly, **1** when one was forced (or had to be
  killed), **2**/**3** as ``run`` does.

A worker checks every second that its supervisor still lives; if the supervisor is
killed outright, its workers stop gracefully by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from prometheus_client.core import CollectorRegistry

from ..config.models import AppSettings
from ..listener.container import CANCEL_GRACE
from ..observability.http import MetricsServer, serve_or_refuse
from ..wire.reconnect import ReconnectBackoff
from .restarts import after_exit
from .shutdown import EXIT_FORCED, EXIT_OK, STOP_MARGIN
from .worker_identity import NAME_VARIABLE, WORKER_VARIABLE
from .worker_metrics import WorkersCollector, fetch, relabelled

PARENT_VARIABLE = "STREAMBOOT_WORKER_PARENT"
PORT_FILE_VARIABLE = "STREAMBOOT_WORKER_PORT_FILE"
"""Where a worker writes the port of its /metrics (the supervisor reads it)."""


@dataclass
class Worker:
    index: int
    port_file: Path
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    deaths: int = 0
    restarts: int = 0
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def port(self) -> int | None:
        try:
            return int(self.port_file.read_text())
        except (OSError, ValueError):
            return None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, config: Path, workers: int, settings: AppSettings) -> None:
        self.config = config
        self.settings = settings
        self.base = f"{socket.gethostname()}-{os.getpid()}"
        self._dir = Path(tempfile.mkdtemp(prefix="streamboot-workers-"))
        self.workers = [Worker(i, self._dir / f"w{i}.port") for i in range(workers)]
        self.stopping = asyncio.Event()
        self._signals = 0
        self._code: int | None = None
        """Set when a worker's exit stopped the group (2 or 3)."""
        self._killed = False
        self._collector = WorkersCollector()
        self.metrics_server: MetricsServer | None = None

    def stop_bound(self) -> float:
        """How long workers may take to stop before they are killed: their own bound."""
        timeouts = [ls.shutdown_timeout or self.settings.container.shutdown_timeout
                    for ls in self.settings.listeners.values()]
        longest = max((t.total_seconds() for t in timeouts), default=30.0)
        return longest + CANCEL_GRACE + STOP_MARGIN + 2.0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            if self.settings.metrics.enabled:
                await self._serve_metrics()
            keepers = [asyncio.create_task(self._keep(w)) for w in self.workers]
            await asyncio.sleep(0.2)
            logger.info("supervising {} workers (pids {})", len(self.workers),
                        ", ".join(str(w.process.pid) for w in self.workers if w.process))
            await self.stopping.wait()
            done, _ = await asyncio.wait(keepers, timeout=self.stop_bound())
            if len(done) < len(keepers):
                self._kill_all()
                await asyncio.wait(keepers, timeout=5.0)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            if self.metrics_server is not None:
                await self.metrics_server.stop()
            with contextlib.suppress(OSError):
                for path in self._dir.iterdir():
                    path.unlink()
                self._dir.rmdir()
        return self._exit_code()

    def _exit_code(self) -> int:
        if self._code is not None:
            return self._code
        if self._killed or any(w.exit_code not in (None, EXIT_OK) for w in self.workers):
            return EXIT_FORCED
        return EXIT_OK

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.info("{} received: stopping {} workers gracefully", name, len(self.workers))
        else:
            logger.warning("second {}: forcing the workers to stop", name)
        self.stopping.set()
        self._send_all(signal.SIGTERM)

    def _send_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.running:
                assert worker.process is not None
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def _kill_all(self) -> None:
        running = [w for w in self.workers if w.running]
        if running:
            self._killed = True
            logger.error("workers {} still running {:g}s after the stop began; killing them "
                         "(their entries stay pending)",
                         ", ".join(str(w.index) for w in running), self.stop_bound())
        self._send_all(signal.SIGKILL)

    async def _spawn(self, worker: Worker) -> asyncio.subprocess.Process:
        env = {**os.environ,
               WORKER_VARIABLE: f"{worker.index}/{len(self.workers)}",
               NAME_VARIABLE: f"{self.base}-w{worker.index}",
               PARENT_VARIABLE: str(os.getpid()),
               PORT_FILE_VARIABLE: str(worker.port_file)}
        if self.settings.metrics.enabled:
            env |= {"STREAMBOOT_METRICS__HOST": "127.0.0.1", "STREAMBOOT_METRICS__PORT": "0"}
        with contextlib.suppress(OSError):
            worker.port_file.unlink()
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamboot", "run", str(self.config), env=env,
            process_group=0)  # a terminal's Ctrl-C reaches the supervisor only

    async def _keep(self, worker: Worker) -> None:
        """Run the worker until the group stops; restart it when it dies meanwhile."""
        while not self.stopping.is_set():
            worker.process = await self._spawn(worker)
            worker.started = time.monotonic()
            code = await worker.process.wait()
            worker.exit_code = code
            if self.stopping.is_set():
                return
            ran = time.monotonic() - worker.started
            decision = after_exit(code, ran, worker.deaths)
            if not decision.restart:
                logger.error("worker {} {}; a restart cannot help: stopping the other "
                             "workers", worker.index, describe_exit(code))
                self._code = decision.exit_code
                self.stopping.set()
                self._send_all(signal.SIGTERM)
                return
            worker.deaths = decision.deaths
            worker.restarts += 1
            logger.warning("worker {} {} after {:.1f}s; restarting it in {:.1f}s (restart {})",
                           worker.index, describe_exit(code), ran, decision.delay,
                           worker.restarts)
            await ReconnectBackoff.wait(decision.delay, self.stopping)

    # -- one /metrics and /healthz ---------------------------------------------------
    async def _serve_metrics(self) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._collector)
        self.metrics_server = MetricsServer(registry, self._health, refresh=self._scrape)
        cfg = self.settings.metrics
        await serve_or_refuse(self.metrics_server, cfg.host, cfg.port)
        logger.info("metrics and /healthz of all workers on http://{}:{}/", cfg.host,
                    self.metrics_server.port)

    async def _scrape(self) -> None:
        texts: dict[int, str] = {}
        for worker in self.workers:
            port = worker.port() if worker.running else None
            up = False
            if port is not None:
                with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
                    status, texts[worker.index] = await fetch(port, "/metrics")
                    up = status == 200
            self._collector.up[worker.index] = up
            self._collector.restarts[worker.index] = worker.restarts
        self._collector.families = relabelled(texts)

    async def _health(self) -> dict[str, object]:
        problems: list[str] = []
        partitions: dict[str, object] = {}
        for worker in self.workers:
            port = worker.port() if worker.running else None
            if not worker.running:
                problems.append(f"worker {worker.index}: not running (restarting)")
                continue
            if port is None:
                problems.append(f"worker {worker.index}: starting")
                continue
            try:
                status, body = await fetch(port, "/healthz")
            except (OSError, TimeoutError, ValueError, IndexError) as exc:
                problems.append(f"worker {worker.index}: not answering ({type(exc).__name__})")
                continue
            if status != 200:
                problems.append(f"worker {worker.index}: {body.strip()}")
            with contextlib.suppress(ValueError, AttributeError):
                leased = json.loads(body).get("partitions")
                if isinstance(leased, dict):
                    partitions[str(worker.index)] = leased
        answer: dict[str, object] = {"healthy": not problems, "problems": problems,
                                     "workers": len(self.workers)}
        if partitions:  # each worker's leased partitions: owned, or a standby
            answer["partitions"] = partitions
        return answer
