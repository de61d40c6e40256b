"""Real ``streamboot run`` processes for the fault tests: started, frozen (SIGSTOP),
resumed, stopped, their log readable while they run; and the journal their handlers
write (tests.handlers:JournalHandler)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from streamboot.devserver import RedisSentinelGroup

ROOT = Path(__file__).resolve().parents[2]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


class Worker:
    """One ``streamboot run FILE`` with a consumer name of its own; stderr goes to a file,
    so the test can wait for a line while the process runs."""

    def __init__(self, config: Path, consumer: str, env: dict[str, str],
                 log: Path, **variables: str) -> None:
        self.consumer = consumer
        self.log = log
        self._sink = log.open("w")
        self.process = subprocess.Popen(
            [STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
            env={**env, "STREAMBOOT_LISTENERS__ORDERS__CONSUMER": consumer, **variables},
            stdout=subprocess.DEVNULL, stderr=self._sink)
        self.frozen_at: float | None = None
        self.resumed_at: float | None = None

    def text(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, needle: str, timeout: float = 15.0) -> None:
        wait(lambda: needle in self.text(), timeout,
             lambda: f"{self.consumer} never logged {needle!r}:\n{self.text()[-3000:]}")

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.frozen_at = time.time()

    def resume(self) -> None:
        self.resumed_at = time.time()
        self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (after SIGCONT, in case it is frozen); kill it past ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._sink.close()
        return self.process.returncode


@contextlib.contextmanager
def workers(*started: Worker) -> Iterator[tuple[Worker, ...]]:
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def wait(condition: object, timeout: float, why: object = "condition not met") -> None:
    """Poll ``condition`` (a callable) every 20 ms; fail with ``why`` at ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(why() if callable(why) else f"{why} within {timeout}s")
        time.sleep(0.02)


@dataclass(frozen=True)
class Record:
    what: str
    consumer: str
    entry_id: str
    at: float


def journal(path: Path) -> list[Record]:
    """What the handlers wrote (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            records.append(Record(parts[0], parts[1], parts[2], float(parts[3])))
    return records


def started(records: list[Record], consumer: str, after: float = 0.0) -> list[str]:
    return [r.entry_id for r in records
            if r.what == "start" and r.consumer == consumer and r.at > after]


def ended(records: list[Record], consumer: str) -> list[str]:
    return [r.entry_id for r in records if r.what == "end" and r.consumer == consumer]


@contextlib.contextmanager
def replicas_cut_off(group: RedisSentinelGroup) -> Iterator[Callable[[], None]]:
    """The primary's replicas paused (SIGSTOP) and their links cut, so that what the primary
    writes from now reaches no replica (a paused replica's kernel would otherwise still
    buffer the stream for it): replication lags, as under load or a slow link. Yields
    ``resume`` (SIGCONT); they are resumed at the end in any case."""
    old = group.primary_port()
    assert old is not None
    replicas = [s for s in group.servers if s.port != old]
    for server in replicas:
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)

    def resume() -> None:
        for server in replicas:
            if server.pid is not None:
                os.kill(server.pid, signal.SIGCONT)

    try:
        with redis.Redis(port=old) as primary:
            primary.execute_command("CLIENT", "KILL", "TYPE", "replica")
        yield resume
    finally:
        resume()
