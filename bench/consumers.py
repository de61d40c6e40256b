"""The consumers the benchmark compares, each run in a process of its own.

    python bench/consumers.py NAME --url URL --stream S --group G --count C --total N
                              [--latency] [--wait-go KEY]

Prints one JSON line: entries handled, seconds from the first read to the last ack, and
(with --latency) the XADD→handler-start latencies in microseconds.

NAME is one of:
  handwritten       the ten-line redis.asyncio loop: XREADGROUP COUNT c, one XACK per batch
  streamboot        Streamboot, a no-op ``async def handle``, payload validation off
  streamboot-model  Streamboot, the payload validated into a pydantic model
  faststream        FastStream's Redis StreamSub, one message per call
  faststream-batch  FastStream's StreamSub with batch=True, max_records=c
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

Record = Callable[[dict[str, str]], None]


class OrderPlaced(BaseModel):
    order_id: str
    user_id: str
    product_id: str
    qty: int
    ts: int


class Probe:
    """Counts handled entries, records latency, and says when the run is complete."""

    def __init__(self, total: int, latency: bool) -> None:
        self.total = total
        self.handled = 0
        self.latency = latency
        self.samples: list[int] = []
        self.done = asyncio.Event()
        self.first = 0.0

    def record(self, fields: dict[str, str] | Any) -> None:
        if self.latency:
            ts = fields["ts"] if isinstance(fields, dict) else fields.ts
            self.samples.append((time.time_ns() - int(ts)) // 1000)
        self.handled += 1
        if self.handled >= self.total:
            self.done.set()


async def wait_go(url: str, key: str | None) -> None:
    """Several processes start together when the orchestrator sets ``key``."""
    if key is None:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.set(f"{key}:ready:{os.getpid()}", 1)
    while not await client.exists(key):  # noqa: ASYNC110 - the key is set by another process
        await asyncio.sleep(0.002)
    await client.aclose()


async def mark_live(url: str, key: str | None) -> None:
    """Tell the orchestrator this consumer reads now (its subscription has started), so a
    latency run does not count a consumer's start-up as the entries' wait."""
    if key is None:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    await client.set(f"{key}:live:{os.getpid()}", 1)
    await client.aclose()


async def handwritten(args: argparse.Namespace, probe: Probe) -> float:
    from redis.asyncio import Redis

    client = Redis.from_url(args.url, decode_responses=True)
    stream, group, consumer = args.stream, args.group, f"hand-{os.getpid()}"
    await wait_go(args.url, args.wait_go)
    start = time.perf_counter()
    await mark_live(args.url, args.wait_go)
    while not probe.done.is_set():
        reply = await client.xreadgroup(group, consumer, {stream: ">"}, count=args.count,
                                        block=100)
        if not reply:
            if args.wait_go and await client.exists(f"{args.wait_go}:stop"):
                break
            continue
        entries = reply[0][1]
        for _entry_id, fields in entries:
            probe.record(fields)
        await client.xack(stream, group, *[entry_id for entry_id, _ in entries])
    elapsed = time.perf_counter() - start
    await client.aclose()
    return elapsed


async def streamboot(args: argparse.Namespace, probe: Probe, model: bool) -> float:
    import redis

    from streamboot import Message, RedisOperator, StreamHandler, build_client
    from streamboot.config import ContainerSettings, ListenerSettings, RedisSettings
    from streamboot.listener.container import ListenerContainer
    from streamboot.listener.spec import resolve_listener
    from streamboot.process.gc_tuning import tune_gc

    class Raw(StreamHandler[dict[str, str]]):
        async def handle(self, message: Message[dict[str, str]]) -> None:
            probe.record(message.payload)

    class Validated(StreamHandler[OrderPlaced]):
        async def handle(self, message: Message[OrderPlaced]) -> None:
            probe.record(message.payload)

    settings = RedisSettings(url=args.url)
    client = build_client(settings)
    operator = RedisOperator(client)
    keeper = redis.Redis.from_url(args.url, decode_responses=True)
    listener = ListenerSettings(stream=args.stream, group=args.group, handler="-",
                                consumer=f"sb-{os.getpid()}", batch_size=args.count,
                                poll_timeout="100ms")  # type: ignore[arg-type]
    spec = resolve_listener("bench", listener, ContainerSettings())
    container = ListenerContainer(operator, keeper)
    container.register(spec, Validated() if model else Raw())
    await wait_go(args.url, args.wait_go)
    start = time.perf_counter()
    await container.start(timeout=10)  # returns once the subscription reads
    # application.gc: tuned, as `streamboot run` applies it once started (BENCH_GC=tuned).
    tune_gc("tuned" if os.environ.get("BENCH_GC") == "tuned" else "default")
    await mark_live(args.url, args.wait_go)
    if args.wait_go:
        await _until_stopped(args, probe)
    else:
        await probe.done.wait()
    await container.stop()  # the last batch's XACK is part of the measured time
    elapsed = time.perf_counter() - start
    await client.aclose()
    keeper.close()
    return elapsed


async def _until_stopped(args: argparse.Namespace, probe: Probe) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(args.url)
    stop = f"{args.wait_go}:stop"  # set by the orchestrator, another process
    while not probe.done.is_set() and not await client.exists(stop):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await client.aclose()


async def faststream(args: argparse.Namespace, probe: Probe, batch: bool) -> float:
    from faststream import FastStream
    from faststream.redis import RedisBroker, StreamSub

    # No per-message access log: FastStream writes one (two lines) per message by default,
    # which measures its logging, not its consuming (and once filled the bench's stderr
    # pipe, stalling the consumer — the seconds of "latency" published for it).
    broker = RedisBroker(args.url, logger=None)
    sub = StreamSub(args.stream, group=args.group, consumer=f"fs-{os.getpid()}",
                    batch=batch, max_records=args.count, polling_interval=100)

    if batch:
        @broker.subscriber(stream=sub)
        async def handle_batch(bodies: list[dict[str, Any]]) -> None:
            for body in bodies:
                probe.record(body)
    else:
        @broker.subscriber(stream=sub)
        async def handle_one(body: dict[str, Any]) -> None:
            probe.record(body)

    app = FastStream(broker)
    await wait_go(args.url, args.wait_go)
    start = time.perf_counter()
    await broker.start()
    await mark_live(args.url, args.wait_go)
    await probe.done.wait()
    await broker.stop()
    elapsed = time.perf_counter() - start
    del app
    return elapsed


RUNNERS: dict[str, Callable[[argparse.Namespace, Probe], Awaitable[float]]] = {
    "handwritten": handwritten,
    "streamboot": lambda a, p: streamboot(a, p, model=False),
    "streamboot-model": lambda a, p: streamboot(a, p, model=True),
    "faststream": lambda a, p: faststream(a, p, batch=False),
    "faststream-batch": lambda a, p: faststream(a, p, batch=True),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(RUNNERS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--wait-go", default=None)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    async def run() -> dict[str, Any]:
        probe = Probe(args.total, args.latency)
        cpu = time.process_time()
        elapsed = await RUNNERS[args.name](args, probe)
        return {"name": args.name, "handled": probe.handled, "seconds": elapsed,
                "cpu_seconds": time.process_time() - cpu, "samples": probe.samples}

    sys.stdout.write(json.dumps(asyncio.run(run())) + "\n")


if __name__ == "__main__":
    main()
