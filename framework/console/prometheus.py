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


def queries(listener: str, settings: ListenerSettings, keys: list[str],
            step: float) -> dict[str, str]:
    """PromQL of each chart for one listener (its streams ``keys``), one point per ``step``
    seconds: every process reports a stream's lag and pending alike (``max`` by stream),
    each point the peak within its step (a point per step alone would miss a peak between
    two); deliveries are each process's own (``sum``)."""
    streams = "|".join(_regex(key) for key in keys) or "^$"
    group = _label(settings.group)
    window = f"{max(1, round(step))}s"
    return {
        "lag": f'max_over_time((sum(max by (stream) (streamboot_group_lag{{group="{group}",'
               f'stream=~"{streams}"}})))[{window}:])',
        "pending": f'max_over_time((sum(max by (stream) (streamboot_group_pending{{group='
                   f'"{group}",stream=~"{streams}"}})))[{window}:])',
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
