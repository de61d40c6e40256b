"""What a feature is given and what it gives back: the contract between the registry
(registry.py) and each feature module, in a module of its own so that neither imports the
other back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config.models import ListenerSettings
from ..handler import StreamHandler
from ..listener.poll import Subscription
from ..listener.spec import ListenerSpec
from ..wire.operator import RedisOperator
from .clock import Clock
from .schedule import Every


class Listeners(Protocol):
    """Where a feature registers the subscriptions it reads and finds them: the
    listener container, or a partition's lease scope (partitions/membership.py), which
    registers them in the container only while this member holds the partition."""

    @property
    def subscriptions(self) -> Mapping[str, Subscription]: ...

    def register(self, spec: ListenerSpec, handler: StreamHandler[Any]) -> object: ...

    async def unregister(self, name: str) -> None: ...


class Job(Protocol):
    """What a feature runs: it says how often itself."""

    def every(self) -> Every: ...


@dataclass
class DeclaredListener:
    """One enabled listener, as the features see it while they declare themselves."""

    name: str
    settings: ListenerSettings
    spec: ListenerSpec
    handler: StreamHandler[Any]
    operator: RedisOperator
    listeners: Listeners
    clock: Clock
    streams_from: Callable[[], list[str]] | None = None
    """Set by the feature that took the subscription over (rotation): the keys it reads."""
    jobs: dict[str, Job] = field(default_factory=dict)
    """Feature name → its job, for the schedule (and for tests and status to look at)."""

    def streams(self) -> list[str]:
        """The physical stream keys this listener reads now (asked again on every run)."""
        return self.streams_from() if self.streams_from is not None else [self.spec.stream]
