"""Pydantic models of ``application.yaml``: the whole file is validated before anything runs.

Every model forbids unknown keys: a misspelt ``batch_sise`` silently falling back to
a default is the kind of bug that only shows under Black Friday load.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..reliability.slots import colocated, same_slot
from .durations import Duration, format_duration

_NAME = r"^[A-Za-z0-9_.:{}\-]+$"
POOL_HEADROOM = 8
"""Pooled connections kept for acks, scripts and jobs beside the listeners' reads."""
STANDALONE_POOL_DEFAULT = 100
CLUSTER_POOL_DEFAULT = 1000
"""Connections per node on Cluster unless ``redis.max_connections`` says otherwise:
redis-py's cluster pool does not wait for a free connection, it fails."""
_START_ID = re.compile(r"^(0|\$|\d+(-\d+)?)$")


_WHY_A_WAIT = {"poll_timeout": " (BLOCK 0 would block forever: the loop could never notice "
                                "a stop request)"}


def at_least_1ms(value: timedelta | None, info: ValidationInfo) -> timedelta | None:
    """A wait of zero means "forever" to Redis (BLOCK 0) or nothing at all: refused."""
    if value is not None and value < timedelta(milliseconds=1):
        name = info.field_name or "the duration"
        raise ValueError(f"{name} must be at least 1ms{_WHY_A_WAIT.get(name, '')}")
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_consumer_name() -> str:
    """``<host>-<pid>``: unique per process, so two replicas never share a PEL."""
    return f"{socket.gethostname()}-{os.getpid()}"


def redact_url(url: str) -> str:
    """The URL with its password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class RedisSettings(StrictModel):
    """Connection to Redis. ``url`` accepts ``redis://``, ``rediss://`` (TLS) and ``unix://``."""

    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: SecretStr | None = None
    db: int | None = Field(default=None, ge=0)
    cluster: bool = False
    socket_timeout: Duration = timedelta(seconds=10)
    socket_connect_timeout: Duration = timedelta(seconds=5)
    client_name: str = "streamboot"
    max_connections: int | None = Field(default=None, ge=1)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a URL starting with redis://, rediss:// or unix://")
        return value

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)


class ContainerSettings(StrictModel):
    """Defaults for every listener; each listener may override any of them."""

    poll_timeout: Duration = Field(
        default=timedelta(seconds=2),
        description="XREADGROUP BLOCK: how long one read waits for new entries.",
    )
    batch_size: int = Field(default=100, ge=1, le=10_000, description="XREADGROUP COUNT.")
    concurrency: int = Field(default=8, ge=1, le=1024, description="Handlers in flight.")
    shutdown_timeout: Duration = timedelta(seconds=30)
    handler_timeout: Duration = Field(
        default=timedelta(minutes=5),
        description="How long one handler call may run; past it, it is cancelled (a sync "
        "handler's thread is abandoned) and the delivery counts as failed.",
    )

    _waits = field_validator("poll_timeout", "handler_timeout")(at_least_1ms)


class RetrySettings(StrictModel):
    """How a failed entry is retried before it is dead-lettered."""

    max_deliveries: int = Field(default=5, ge=1, le=1000)
    backoff: Duration = Field(
        default=timedelta(seconds=1),
        description="First in-process retry delay, doubled each attempt; 0 leaves a failed "
        "entry pending for the recovery job instead.",
    )
    backoff_max: Duration = timedelta(minutes=1)


class DeadLetterSettings(StrictModel):
    enabled: bool = True
    stream: str | None = Field(
        default=None,
        description="Default: '{<stream>}:dlq', in the stream's Redis Cluster hash slot.",
    )


class PendingScanSettings(StrictModel):
    """The recovery job: reclaims entries of dead or hung consumers."""

    enabled: bool = True
    interval: Duration = timedelta(seconds=30)
    min_idle: Duration = timedelta(seconds=30)
    count: int = Field(default=100, ge=1, le=10_000)
    warn_after: Duration = timedelta(minutes=5)

    @field_validator("min_idle")
    @classmethod
    def _min_idle(cls, value: timedelta) -> timedelta:
        # Owners renew every min_idle/3: below 300ms renewals would be constant traffic.
        if value < timedelta(milliseconds=300):
            raise ValueError("min_idle must be at least 300ms")
        return value


class IdempotencySettings(StrictModel):
    """Skip entries whose business key was already handled by this group."""

    key: str = Field(min_length=1, description="The payload field holding the business key.")
    ttl: Duration = timedelta(hours=24)
    prefix: str = "streamboot:done"


class RotationSettings(StrictModel):
    """Time-partitioned streams: a new physical key every ``period``, expiring after ``ttl``."""

    period: Duration = timedelta(hours=1)
    key_format: str = Field(min_length=1, description="strftime pattern, e.g. 'orders:%Y%m%d%H'")
    ttl: Duration = timedelta(hours=3)
    precreate: Duration = timedelta(minutes=5)
    drain_margin: Duration = Field(
        default=timedelta(minutes=15),
        description="How long after its period a stream must still live to be drained.",
    )
    timezone: str = "UTC"
    check_interval: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _coherent(self) -> RotationSettings:
        if self.period < timedelta(minutes=1):
            raise ValueError("rotation.period must be at least 1m")
        if "%" not in self.key_format:
            raise ValueError("rotation.key_format needs strftime fields (such as %Y%m%d%H), "
                             "or every period would use the same key")
        if self.check_interval > self.precreate:
            raise ValueError(
                f"rotation.check_interval ({format_duration(self.check_interval)}) is longer "
                f"than rotation.precreate ({format_duration(self.precreate)}): the job might "
                "not run between the moment the next period may be created and its start, so "
                "it would not be pre-created")
        needed = self.period + self.precreate + self.drain_margin
        if self.ttl < needed:
            raise ValueError(
                f"rotation.ttl ({format_duration(self.ttl)}) is shorter than period + "
                f"precreate + drain_margin ({format_duration(needed)}): a stream could expire "
                "before it is drained")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        return self


class RetentionSettings(StrictModel):
    """Trimming that never loses work a group still needs (XTRIM MINID, safe point)."""

    max_len: int | None = Field(default=None, ge=1)
    max_age: Duration | None = None
    approximate: bool = True
    interval: Duration = timedelta(minutes=5)
    max_trim: int = Field(default=10_000, ge=1, description="Entries removed per run at most.")


class CleanupSettings(StrictModel):
    enabled: bool = True
    consumer_idle: Duration = timedelta(hours=1)
    interval: Duration = timedelta(minutes=5)


class BackpressureSettings(StrictModel):
    """When producers must slow down: over ``max_length`` entries or ``max_lag`` unread."""

    max_length: int | None = Field(default=None, ge=1)
    max_lag: int | None = Field(default=None, ge=1)
    mode: Literal["raise", "wait"] = "raise"
    wait_timeout: Duration = timedelta(seconds=5)
    check_every: Duration = timedelta(milliseconds=100)


class PublishSettings(StrictModel):
    schema_version: int | None = Field(default=None, ge=1,
                                       description="Added as a 'schema_version' field.")
    backpressure: BackpressureSettings | None = None


class AlertSettings(StrictModel):
    """Seed 002 §6.3's alarms; crossing one logs a warning once and raises a gauge."""

    max_pending_per_consumer: int | None = Field(default=1000, ge=1)
    max_oldest_pending_idle: Duration | None = timedelta(minutes=5)
    max_lag: int | None = Field(default=100_000, ge=1)


class ListenerSettings(StrictModel):
    """One subscription: a consumer of ``group`` on ``stream`` feeding ``handler``."""

    stream: str = Field(min_length=1)
    group: str = Field(min_length=1, pattern=_NAME)
    consumer: str = Field(default_factory=default_consumer_name, min_length=1)
    handler: str = Field(
        min_length=1,
        description="A provider name of the application container, or 'package.module:Class'.",
    )
    start_id: str = Field(
        default="0",
        description="Where a new group starts: '0' (whole stream), '$' (only new) or an id.",
    )
    codec: Literal["flat", "json"] = "flat"
    json_field: str = "payload"
    enabled: bool = True
    poll_timeout: Duration | None = None
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    shutdown_timeout: Duration | None = None
    handler_timeout: Duration | None = None
    retry: RetrySettings = RetrySettings()
    dead_letter: DeadLetterSettings = DeadLetterSettings()
    pending_scan: PendingScanSettings = PendingScanSettings()
    idempotency: IdempotencySettings | None = None
    rotation: RotationSettings | None = None
    retention: RetentionSettings | None = None
    cleanup: CleanupSettings = CleanupSettings()
    publish: PublishSettings = PublishSettings()
    alerts: AlertSettings = AlertSettings()

    @property
    def dead_letter_stream(self) -> str | None:
        if not self.dead_letter.enabled:
            return None
        return self.dead_letter.stream or colocated(self.stream, ":dlq")

    @model_validator(mode="after")
    def _dead_letter_in_same_slot(self) -> ListenerSettings:
        dlq = self.dead_letter_stream
        if dlq is not None and not same_slot(self.stream, dlq):
            raise ValueError(
                f"dead_letter.stream {dlq!r} must share the hash slot of {self.stream!r} so "
                f"that dead-lettering and the ack are one atomic step on Redis Cluster; "
                f"use {colocated(self.stream, ':dlq')!r} or a common {{hash tag}}"
            )
        return self

    _waits = field_validator("poll_timeout", "handler_timeout")(at_least_1ms)

    @field_validator("start_id")
    @classmethod
    def _start_id(cls, value: str) -> str:
        if not _START_ID.match(value):
            raise ValueError("expected '0', '$' or a stream id such as 1700000000000-0")
        return value


class SchedulerSettings(StrictModel):
    """APScheduler settings shared by the framework's jobs."""

    enabled: bool = True
    timezone: str = "UTC"
    misfire_grace_time: Duration = timedelta(seconds=30)


class MetricsSettings(StrictModel):
    """Prometheus /metrics and /healthz, served by ``streamboot run``."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    refresh: Duration = timedelta(seconds=15)


class LoggingSettings(StrictModel):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    json_lines: bool = False
    tracebacks: bool = Field(
        default=False,
        description="Full tracebacks of handler failures (a dead-lettered entry's last one); "
        "otherwise one line each. Always on at DEBUG.",
    )


class ApplicationSettings(StrictModel):
    """Who the application is: its name and the DI container class that holds its beans."""

    name: str = "streamboot"
    container: str | None = Field(
        default=None,
        description="'package.module:Container', a StreambootContainer subclass; "
        "None for the framework's own container.",
    )


class AppSettings(BaseSettings):
    """The whole application file. Environment variables override it key by key.

    ``STREAMBOOT_REDIS__URL`` overrides ``redis.url``;
    ``STREAMBOOT_LISTENERS__ORDERS__BATCH_SIZE`` overrides ``listeners.orders.batch_size``.
    """

    model_config = SettingsConfigDict(
        env_prefix="STREAMBOOT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    application: ApplicationSettings = ApplicationSettings()
    redis: RedisSettings = RedisSettings()
    container: ContainerSettings = ContainerSettings()
    listeners: dict[str, ListenerSettings] = Field(default_factory=dict)
    scheduler: SchedulerSettings = SchedulerSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML arrives as init kwargs; the environment wins over it.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _pool_serves_the_listeners(self) -> AppSettings:
        """On Redis Cluster every blocking read holds a pooled connection for up to
        ``poll_timeout`` (standalone readers have connections of their own): a pool smaller
        than the reads would starve listeners, so refuse it here rather than at 3 a.m."""
        redis = self.redis
        if not redis.cluster:
            return self
        pool = redis.max_connections or CLUSTER_POOL_DEFAULT
        # A rotated listener reads the current period, the pre-created next one and the
        # previous one while it drains.
        reads = sum(3 if listener.rotation is not None else 1
                    for listener in self.listeners.values() if listener.enabled)
        needed = reads + POOL_HEADROOM
        if pool < needed:
            raise ValueError(
                f"redis.max_connections ({pool}) cannot serve the listeners "
                f"declared on Redis Cluster: their reads hold up to {reads} connections at "
                f"once, plus {POOL_HEADROOM} for acks and jobs; set at least {needed}, or "
                f"leave it unset ({CLUSTER_POOL_DEFAULT} per node)")
        return self

    @model_validator(mode="after")
    def _block_below_socket_timeout(self) -> AppSettings:
        limit = self.redis.socket_timeout
        for name, listener in self.listeners.items():
            block = listener.poll_timeout or self.container.poll_timeout
            if block >= limit:
                raise ValueError(
                    f"listeners.{name}: poll_timeout ({block.total_seconds()}s) must be shorter "
                    f"than redis.socket_timeout ({limit.total_seconds()}s), or every idle read "
                    "would end in a socket timeout"
                )
        return self
