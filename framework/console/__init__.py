"""``streamboot console``: a web page of the application's streams as operators think of
them — listeners, partitions, lag, pending, consumers, owners, dead letters — with the
dead-letter browser's replay and purge (server-rendered; see docs/operations.md)."""

from .app import console_app
from .settings import ConsoleSettings

__all__ = ["ConsoleSettings", "console_app"]
