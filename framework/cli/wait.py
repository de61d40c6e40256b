"""``streamboot wait --drained LISTENER``: block until a listener has nothing left to do.

For deploy scripts and tests: stop the producers, ``wait --drained orders``, then stop or
replace the consumers knowing nothing is in flight. Drained means, on every stream the
listener reads (each partition; for a rotated listener each live period that exists),
its group has lag 0 and no pending entry. A group that does not exist yet is drained
only when its stream holds nothing: entries nobody has read are not "done".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import typer

from ..config.durations import parse_duration
from ..config.models import AppSettings, ListenerSettings
from ..errors import UsageError
from ..jobs.clock import SystemClock
from ..observability.stream_views import listener_streams
from ..wire.ids import id_key
from ..wire.operator import RedisOperator
from .common import USAGE, ConfigOption, UrlOption, count, fail, out, printable, with_redis

NOT_DRAINED = 1
POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class StreamState:
    """What is left on one stream the listener reads."""

    key: str
    lag: int | None
    """None when Redis cannot say (entries deleted) and the group is not at the end."""
    pending: int
    group_missing: bool = False
    entries: int = 0
    """The stream's length, said when the group does not exist yet."""

    @property
    def drained(self) -> bool:
        if self.group_missing:
            return self.entries == 0
        return self.lag == 0 and self.pending == 0

    def describe(self) -> str:
        if self.group_missing:
            return f"group not created yet, {count(self.entries, 'entry', 'entries')} unread"
        return f"lag {'?' if self.lag is None else self.lag}, pending {self.pending}"


async def stream_state(operator: RedisOperator, key: str, group: str) -> StreamState | None:
    """None when the stream does not exist (nothing there to drain)."""
    if await operator.key_type(key) == "none":
        return None
    groups = {g.name: g for g in await operator.info_groups(key)}
    if group not in groups:
        return StreamState(key, None, 0, group_missing=True, entries=await operator.xlen(key))
    info = groups[group]
    lag = info.lag
    if lag is None:  # after deletions Redis cannot count; at the end it is 0 all the same
        last = (await operator.info_stream(key)).last_generated_id
        lag = 0 if id_key(info.last_delivered_id) >= id_key(last) else None
    return StreamState(key, lag, info.pending)


def wait(
    drained: Annotated[str, typer.Option(
        "--drained", metavar="LISTENER",
        help="The listener's name under `listeners:` in the application file.")],
    timeout: Annotated[str, typer.Option(
        help="Give up after this long (e.g. 30s, 5m): exit 1, saying what is left.")] = "60s",
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Wait until a listener's group has lag 0 and nothing pending on every stream it reads.

    Polls every 0.5s; exit 0 once drained, 1 at --timeout (what is left on one line)."""
    try:
        limit = parse_duration(timeout)
    except ValueError as exc:
        fail(USAGE, f"--timeout: {exc}")
    if config is None:
        fail(USAGE, "wait --drained needs the application file (--config): it names the "
                    "listener's streams and group")

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        assert settings is not None  # --config was given
        listener = settings.listeners.get(drained)
        if listener is None:
            known = ", ".join(sorted(settings.listeners)) or "none"
            raise UsageError(f"no listener {drained!r} in {config} (its listeners: {known})")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit.total_seconds()
        while True:
            states = [state for key in (stream.key for stream in listener_streams(
                          listener, SystemClock().now()))
                      if (state := await stream_state(operator, key, listener.group))]
            if all(state.drained for state in states):
                said = (f"lag 0, pending 0 on {count(len(states), 'stream')}" if states
                        else "none of its streams exists yet")
                out.print(f"{printable(drained)} drained: {said}", markup=False)
                return
            left = deadline - loop.time()
            if left <= 0:
                fail(NOT_DRAINED, _not_drained(drained, timeout, listener, states))
            await asyncio.sleep(min(POLL_S, left))

    with_redis(config, url, job)


def _not_drained(name: str, timeout: str, listener: ListenerSettings,
                 states: list[StreamState]) -> str:
    """``orders not drained after 60s: lag 12, pending 3 (p0: lag 12, pending 0; …)``."""
    lag = ("?" if any(s.lag is None and not s.group_missing for s in states)
           else str(sum(s.lag or 0 for s in states)))
    pending = sum(s.pending for s in states)
    unread = sum(s.entries for s in states if s.group_missing)
    total = f"lag {lag}, pending {pending}" + (
        f", {count(unread, 'entry', 'entries')} unread" if unread else "")
    detail = "; ".join(f"{_label(s.key, listener)}: {s.describe()}"
                       for s in states if not s.drained)
    return f"{printable(name)} not drained after {timeout}: {total} ({detail})"


def _label(key: str, listener: ListenerSettings) -> str:
    """``p3`` for a partition of a listener that is not rotated; the key otherwise."""
    prefix = f"{{{listener.stream}:p"
    if listener.rotation is None and key.startswith(prefix) and key.endswith("}"):
        return "p" + key[len(prefix):-1]
    return printable(key)
