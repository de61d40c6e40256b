"""One ``/metrics`` for every worker: each worker's own exposition, labelled by worker.

Every worker serves its metrics on a loopback port of its own (it writes the port to a
file the supervisor gave it); a scrape of the supervisor fetches them all and relabels
each sample with ``worker="<i>"``, so rates and sums work across workers
(``sum without (worker) (...)``). The stream gauges (length, lag, pending) are the same
Redis facts seen by every worker: take ``max without (worker)`` of those.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

FETCH_TIMEOUT = 2.0


async def fetch(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` from a worker on loopback: (status, body); bounded by FETCH_TIMEOUT."""
    async def get() -> tuple[int, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: worker\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, body.decode()

    return await asyncio.wait_for(get(), FETCH_TIMEOUT)


def relabelled(texts: dict[int, str]) -> list[Metric]:
    """The workers' families merged, each sample labelled with its worker."""
    merged: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation,
                                                    family.type, family.unit)
            for sample in family.samples:
                into.samples.append(sample._replace(
                    labels={**sample.labels, "worker": str(worker)}))
    return list(merged.values())


class WorkersCollector(Collector):
    """What the supervisor's registry collects at each scrape (set by the supervisor just
    before rendering: collect() itself cannot await)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []
        self.up: dict[int, bool] = {}
        self.restarts: dict[int, int] = {}

    def collect(self) -> Iterator[Any]:
        yield from self.families
        up = GaugeMetricFamily("streamboot_worker_up", "1 while the worker runs and answers.",
                               labels=["worker"])
        restarts = GaugeMetricFamily("streamboot_worker_restarts",
                                     "Times the supervisor restarted the worker.",
                                     labels=["worker"])
        for worker in sorted(self.up):
            up.add_metric([str(worker)], 1.0 if self.up[worker] else 0.0)
            restarts.add_metric([str(worker)], float(self.restarts.get(worker, 0)))
        yield up
        yield restarts

