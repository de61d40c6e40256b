"""What ``publish.durability`` costs: each write followed by WAIT in its round trip.

    python bench/durability.py [--singles 2000] [--batches 200] [--batch 100]

A primary with one replica on loopback (streamboot.devserver.RedisSentinelGroup, one
Sentinel); a Publisher of one listener without durability and one with
``durability: {replicas: 1, timeout: 1s}`` (through Sentinel, as a team would run it).
Alternating rounds of: ``--singles`` ``publish()`` calls one after another (the latency
of one publish), and ``--batches`` ``publish_many()`` calls of ``--batch`` entries (the
cost per batch). Prints one JSON line: median and p99 µs per publish, and per batch, for
each, and the ratio; appended to bench/results/durability.jsonl with --save.

On loopback a replica acknowledges within a fraction of a millisecond, so this is the
floor of the cost: across hosts, WAIT adds one replica round trip (the network's) to
each publish or batch — never one per entry in a batch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from streamboot import Publisher, RedisOperator, build_client, close_client
from streamboot.config import settings_from_mapping
from streamboot.devserver import RedisSentinelGroup

RESULTS = Path(__file__).resolve().parent / "results" / "durability.jsonl"


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": round(statistics.median(ordered) * 1e6, 1),
            "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1)}


async def _measure(args: argparse.Namespace, group: RedisSentinelGroup) -> dict[str, Any]:
    listener = {"group": "g", "handler": "bench.handlers:BusyHandler"}
    settings = settings_from_mapping({
        "redis": {"sentinel": {"master": group.master, "nodes": group.nodes}},
        "listeners": {"plain": {"stream": "plain", **listener},
                      "durable": {"stream": "durable", **listener, "publish": {
                          "durability": {"replicas": 1, "timeout": "1s"}}}},
    })
    client = build_client(settings.redis)
    operator = RedisOperator(client)
    publishers = {name: Publisher.for_listener(operator, settings.listeners[name])
                  for name in ("plain", "durable")}
    singles: dict[str, list[float]] = {name: [] for name in publishers}
    batches: dict[str, list[float]] = {name: [] for name in publishers}
    try:
        for _ in range(2):  # warm up both, then alternate rounds
            for publisher in publishers.values():
                await publisher.publish_many([{"n": "0"}] * args.batch)
        for _round in range(4):
            for name, publisher in publishers.items():
                for n in range(args.singles // 4):
                    began = time.perf_counter()
                    await publisher.publish({"n": str(n)})
                    singles[name].append(time.perf_counter() - began)
                payload = [{"n": str(n)} for n in range(args.batch)]
                for _ in range(args.batches // 4):
                    began = time.perf_counter()
                    await publisher.publish_many(payload)
                    batches[name].append(time.perf_counter() - began)
    finally:
        await close_client(client)
    result: dict[str, Any] = {"singles": args.singles, "batches": args.batches,
                              "batch": args.batch}
    for name in publishers:
        result[name] = {"publish": _quantiles(singles[name]),
                        "batch": _quantiles(batches[name])}
    result["ratio_publish"] = round(statistics.median(singles["durable"])
                                    / statistics.median(singles["plain"]), 2)
    result["ratio_batch"] = round(statistics.median(batches["durable"])
                                  / statistics.median(batches["plain"]), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    with RedisSentinelGroup(replicas=1, sentinels=1) as group:
        result = asyncio.run(_measure(args, group))
    line = json.dumps(result)
    print(line)
    if args.save:
        with RESULTS.open("a") as out:
            out.write(line + "\n")


if __name__ == "__main__":
    main()
