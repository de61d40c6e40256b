"""Configuration: the pydantic models of ``application.yaml`` and the loader."""

from ..errors import ConfigError, ConfigProblem
from .durations import Duration, parse_duration, to_ms
from .loader import load_settings, settings_from_mapping
from .models import (
    ApplicationSettings,
    AppSettings,
    ContainerSettings,
    ListenerSettings,
    LoggingSettings,
    RedisSettings,
    SchedulerSettings,
)

__all__ = [
    "AppSettings",
    "ApplicationSettings",
    "ConfigError",
    "ConfigProblem",
    "ContainerSettings",
    "Duration",
    "ListenerSettings",
    "LoggingSettings",
    "RedisSettings",
    "SchedulerSettings",
    "load_settings",
    "parse_duration",
    "settings_from_mapping",
    "to_ms",
]
