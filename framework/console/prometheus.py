"""The charts from a Prometheus server (``--prometheus URL``) instead of the console's own
samples: the same series, over the same hour, from what Prometheus scraped of every
process — so they survive the console's restarts and show the time before it started."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
import urllib.request

from ..config.models import ListenerSettings
from .history import Points

TIMEOUT = 5.0


def queries(listener: str, settings: ListenerSettings, keys: list[str]) -> dict[str, str]:
    """PromQL of each chart for one listener (its streams ``keys``): every process reports
    a stream's lag and pending alike (``max`` by stream), and its own deliveries (``sum``)."""
    streams = "|".join(_regex(key) for key in keys) or "^$"
    group = _label(settings.group)
    return {
        "lag": f'sum(max by (stream) (streamboot_group_lag{{group="{group}",'
               f'stream=~"{streams}"}}))',
        "pending": f'sum(max by (stream) (streamboot_group_pending{{group="{group}",'
                   f'stream=~"{streams}"}}))',
        "throughput": f'sum(rate(streamboot_entries_handled_total{{listener='
                      f'"{_label(listener)}"}}[1m]))',
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _regex(key: str) -> str:
    return _label(re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", key))


async def query_range(url: str, expr: str, start: float, end: float, step: float) -> Points:
    """One series (the first the query returns), or [] when it returns none."""
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}",
                                     "end": f"{end:.3f}", "step": f"{step:g}"})

    def fetch() -> Points:
        with urllib.request.urlopen(f"{url}/api/v1/query_range?{params}",
                                    timeout=TIMEOUT) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus: {body.get('error', body)}")
        result = body["data"]["result"]
        if not result:
            return []
        return [(float(t), float(v)) for t, v in result[0]["values"] if v not in ("NaN",)]

    return await asyncio.to_thread(fetch)
