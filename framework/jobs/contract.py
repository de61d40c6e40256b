"""What a feature is given and what it gives back: the contract between the registry
(registry.py) and each feature module, in a module of its own so that neither imports the
other back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config.models import ListenerSettings
from ..handler import StreamHandler
from ..listener.container import ListenerContainer
from ..listener.spec import ListenerSpec
from ..wire.operator import RedisOperator
from .clock import Clock
from .schedule import Every


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
    listeners: ListenerContainer
    clock: Clock
    streams_from: Callable[[], list[str]] | None = None
    """Set by the feature that took the subscription over (rotation): the keys it reads."""
    jobs: dict[str, Job] = field(default_factory=dict)
    """Feature name → its job, for the schedule (and for tests and status to look at)."""

    def streams(self) -> list[str]:
        """The physical stream keys this listener reads now (asked again on every run)."""
        return self.streams_from() if self.streams_from is not None else [self.spec.stream]
