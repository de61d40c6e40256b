"""Read-only views of streams, groups, consumers and pending entries, for the admin's
commands (``streamboot status``, ``pending``) and the metrics gauges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import WrongTypeError
from ..wire.operator import RedisOperator


@dataclass
class ConsumerView:
    name: str
    pending: int
    idle_ms: int


@dataclass
class GroupView:
    name: str
    lag: int | None
    pending: int
    oldest_pending_idle_ms: int | None
    last_delivered_id: str
    consumers: list[ConsumerView] = field(default_factory=list)


@dataclass
class StreamView:
    key: str
    exists: bool
    length: int = 0
    first_id: str | None = None
    last_id: str | None = None
    memory_bytes: int | None = None
    groups: list[GroupView] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def stream_view(operator: RedisOperator, key: str) -> StreamView:
    kind = await operator.key_type(key)
    if kind == "none":
        return StreamView(key, exists=False)
    if kind != "stream":
        raise WrongTypeError(key)
    info = await operator.info_stream(key)
    memory = await operator.memory_usage(key)
    view = StreamView(key, True, info.length,
                      info.first_entry.id if info.first_entry else None,
                      info.last_entry.id if info.last_entry else None,
                      int(memory) if memory is not None else None)
    for group in await operator.info_groups(key):
        oldest = None
        if group.pending:
            rows = await operator.pending_range(key, group.name, count=1)
            oldest = rows[0].idle_ms if rows else None
        consumers = [ConsumerView(c.name, c.pending, c.idle_ms)
                     for c in await operator.info_consumers(key, group.name)]
        view.groups.append(GroupView(group.name, group.lag, group.pending, oldest,
                                     group.last_delivered_id, consumers))
    return view
