"""The threads a listener runs its sync (``def``) handlers in.

Not ``ThreadPoolExecutor``, for two reasons that matter when a handler hangs: its threads
are joined at interpreter exit, so one handler stuck in a socket read kept the process
alive long after "stopped"; and a stuck thread keeps its place in the pool, so the
listener would run one handler fewer for good. Here threads are daemons, and a thread whose
handler overran ``handler_timeout`` is *abandoned*: its entry is treated as failed, a new
thread takes its place, and the stuck one ends quietly whenever its handler returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .timeouts import Running


class _Worker:
    __slots__ = ("abandoned", "job", "label", "since", "thread")

    def __init__(self) -> None:
        self.job: Future[Any] | None = None
        self.since = 0.0
        self.abandoned = False
        self.label = ""
        self.thread: threading.Thread | None = None


class HandlerThreads:
    """Up to ``size`` live daemon threads, started as work arrives."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]
                                      | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue a call; a thread is added while fewer than ``size`` live ones exist (the
        listener never has more than ``concurrency`` calls in flight)."""
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args))
        self._fill()
        return future

    def call(self, running: Running, fn: Callable[[Any], Any], arg: Any) -> asyncio.Future[Any]:
        """``fn(arg)`` in a thread, in the caller's context (its log context, the entry id),
        awaitable on the loop. ``running`` learns the call's future: a timeout abandons the
        thread that runs it (:meth:`abandon`). A plain function, not a coroutine: the
        per-entry path pays no extra layer."""
        job = self.submit(contextvars.copy_context().run, fn, arg)
        running.future = job
        return asyncio.wrap_future(job)

    def abandon(self, future: Future[Any], label: str) -> None:
        """The handler running ``future`` (``label``: its entry id) overran its time: stop
        counting its thread, and start its replacement."""
        with self._lock:
            for worker in self._workers:
                if worker.job is future:
                    worker.abandoned, worker.label = True, label
        self._fill()

    def _fill(self) -> None:
        with self._lock:
            live = sum(1 for w in self._workers if not w.abandoned)
            if live < self._size and not self._closed:
                self._start()

    def abandoned(self) -> list[tuple[str, float]]:
        """(entry id, start time, monotonic) of abandoned handlers still running."""
        with self._lock:
            return [(w.label, w.since) for w in self._workers
                    if w.abandoned and w.thread is not None and w.thread.is_alive()]

    def shutdown(self) -> None:
        """Let idle threads end; running ones end after their handler (never waited for)."""
        with self._lock:
            self._closed = True
            count = len(self._workers)
        for _ in range(count):
            self._jobs.put(None)

    def _start(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(target=self._run, args=(worker,), daemon=True,
                                         name=f"{self._name}-{len(self._workers) + 1}")
        self._workers.add(worker)
        worker.thread.start()

    def _run(self, worker: _Worker) -> None:
        try:
            while True:
                item = self._jobs.get()
                if item is None:
                    return
                future, fn, args = item
                if not future.set_running_or_notify_cancel():
                    continue
                worker.job, worker.since = future, time.monotonic()
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                worker.job = None
                if worker.abandoned:
                    return  # its replacement runs on
        finally:
            with self._lock:
                self._workers.discard(worker)
