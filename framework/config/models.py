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
from urllib.parse import parse_qsl, urlsplit, urlunsplit
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

from ..wire.hash_slots import colocated, same_slot
from .durations import Duration, format_duration

_NAME = r"^[A-Za-z0-9_.:{}\-]+$"
POOL_HEADROOM = 8
"""Pooled connections kept for acks, scripts and jobs beside the listeners' reads."""
STANDALONE_POOL_DEFAULT = 100
CLUSTER_POOL_DEFAULT = 1000
"""Connections per node on Cluster unless ``redis.max_connections`` says otherwise:
redis-py's cluster pool does not wait for a free connection, it fails."""
RENEWAL_REPLY_SHARE = 10
"""The ownership renewal's connection waits for a reply at most ``min_idle`` / this (never
longer than ``redis.socket_timeout``): a silent socket costs a tenth of ``min_idle``."""
RENEWAL_CONNECT_SHARE = 4
"""``redis.socket_connect_timeout`` may be at most ``min_idle`` / this: a renewal that
times out (a tenth), reconnects (this quarter) and tries again (a tenth) lands within
0.8 × ``min_idle`` of the previous one, which began a third of ``min_idle`` earlier."""
LEASE_TRUST = 0.8
"""A member acts on a partition only while its last lease renewal was sent less than
this share of ``lease_ttl`` ago (listener/tenure.py): the rest is the margin for clocks
that run at slightly different rates and for the renewal's way to the server."""
LEASE_READ_MARGIN = timedelta(milliseconds=250)
"""Added to a read's BLOCK when asking whether a lease covers it: the reply's way back,
and a busy loop's delay in taking it."""
_START_ID = re.compile(r"^(0|\$|\d+(-\d+)?)$")


_WHY_A_WAIT = {"poll_timeout": " (BLOCK 0 would block forever: the loop could never notice "
                                "a stop request)",
               "socket_connect_timeout": " (0 would fail every connection)",
               "socket_timeout": " (0 would fail every command)"}


def at_least_1ms(value: timedelta | None, info: ValidationInfo) -> timedelta | None:
    """A wait of zero means "forever" to Redis (BLOCK 0) or nothing at all: refused."""
    if value is not None and value < timedelta(milliseconds=1):
        name = info.field_name or "the duration"
        raise ValueError(f"{name} must be at least 1ms{_WHY_A_WAIT.get(name, '')}")
    return value


class StrictModel(BaseModel):
    # An attribute's docstring is its description: the configuration reference
    # (config/reference.py, docs/configuration.md) is generated from them.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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


class TlsSettings(StrictModel):
    """TLS for a ``rediss://`` URL: the CA to verify the server with, and a client
    certificate for a server that asks for one (``tls-auth-clients yes``)."""

    ca_file: str | None = None
    """CA certificate(s), PEM, to verify the server's certificate with; none: the system's CAs"""
    cert_file: str | None = None
    """client certificate, PEM (with `key_file`), for a server that authenticates clients"""
    key_file: str | None = None
    """the client certificate's private key, PEM"""
    verify: bool = True
    """verify the server's certificate; `false` accepts any (never in production)"""
    check_hostname: bool = True
    """check that the certificate names the host of `redis.url`"""

    @model_validator(mode="after")
    def _files(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{name}: no such file {path!r} (relative paths are read "
                                 "from the current directory)")
        return self


class SentinelSettings(StrictModel):
    """Find the primary through Redis Sentinel, and find it again after a failover."""

    master: str = Field(min_length=1)
    """the name the Sentinels monitor the primary under (`sentinel monitor <master> …`)"""
    nodes: list[str] | str = Field(min_length=1)
    """the Sentinels, `host:port` each: a list, or one comma-separated string (as an
    environment variable gives it); any that answers will do, more than one survives a
    Sentinel down"""
    username: str | None = None
    """the Sentinels' own ACL user, when they require one (`redis.username` is the data
    nodes')"""
    password: SecretStr | None = None
    """secret; the Sentinels' own password (`sentinel requirepass`), when they require one"""
    tls: bool = False
    """TLS to the Sentinels and the data nodes, with the certificates of `redis.tls` (or the
    system's CAs)"""

    @field_validator("nodes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):  # an empty part ("a,,b") is kept, to be refused below
            parts = [part.strip() for part in value.split(",")]
            return parts[:-1] if len(parts) > 1 and not parts[-1] else parts
        return value

    @field_validator("nodes")
    @classmethod
    def _host_port(cls, nodes: list[str] | str) -> list[str]:
        nodes = [nodes] if isinstance(nodes, str) else nodes
        bad = []
        for node in nodes:
            host, _, port = node.rpartition(":")
            if host and port.isdigit() and not 0 < int(port) < 65536:
                bad.append(f"{node!r} (port out of range 1-65535)")
            elif not host or not port.isdigit():
                bad.append(repr(node) if node else "an empty entry")
        if bad:  # every one at once, not the first of several
            raise ValueError(f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not "
                             "host:port (e.g. sentinel-0:26379)")
        return nodes

    @property
    def node_list(self) -> list[str]:
        """``nodes``, always a list once validated."""
        return [self.nodes] if isinstance(self.nodes, str) else self.nodes

    def addresses(self) -> list[tuple[str, int]]:
        return [(host.strip("[]"), int(port))
                for host, _, port in (node.rpartition(":") for node in self.node_list)]


class RedisSettings(StrictModel):
    """Connection to Redis. ``url`` accepts ``redis://``, ``rediss://`` (TLS) and ``unix://``."""

    url: str = "redis://127.0.0.1:6379/0"
    """`redis://`, `rediss://` (TLS) or `unix://`"""
    username: str | None = None
    """ACL user (overrides the URL's)"""
    password: SecretStr | None = None
    """secret; overrides the URL's"""
    db: int | None = Field(default=None, ge=0)
    """database number (overrides the URL's); not used in cluster mode"""
    cluster: bool = False
    """use `RedisCluster` (every key and script is single-slot)"""
    socket_timeout: Duration = timedelta(seconds=10)
    """must be longer than every listener's `poll_timeout` (checked); at least 1ms"""
    socket_connect_timeout: Duration = timedelta(seconds=5)
    """how long opening a connection may take before it counts as failed (then retried). At
    most a quarter of every listener's `pending_scan.min_idle` (checked): the ownership
    renewal must be able to reconnect well within it"""
    client_name: str = "streamboot"
    """`CLIENT SETNAME`, visible in `CLIENT LIST`"""
    max_connections: int | None = Field(default=None, ge=1, json_schema_extra={
        "default_shown": "`100` (standalone), `1000` per node (Cluster)"})
    """the client's pool: acks, scripts, jobs and your handlers' commands; a burst waits for a
    free connection (a log line says the pool is exhausted, never that Redis is down). On a
    standalone server each listener reads on a connection of its own, outside the pool, so any
    number of listeners reads. On Cluster reads are pooled: a set value must cover every
    listener's read (a rotated one counts 3) plus 8, or the file is refused"""
    tls: TlsSettings | None = None
    """certificates for a `rediss://` URL (or `sentinel.tls`); absent: TLS verifies the
    server with the system's CAs"""
    sentinel: SentinelSettings | None = None
    """find the primary through Redis Sentinel instead of `url` (every connection follows
    a failover); `username`, `password`, `db` and the timeouts still apply to the data
    nodes"""
    startup_timeout: Duration | None = None
    """how long `streamboot run` waits for Redis at start (retrying, `/healthz` 503
    `waiting for redis at …` meanwhile) before it ends with exit 3; absent: it waits until
    Redis answers or it is stopped (an orchestrator's liveness probe decides)"""

    _waits = field_validator("socket_timeout", "socket_connect_timeout")(at_least_1ms)
    _startup = field_validator("startup_timeout")(at_least_1ms)

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> RedisSettings:
        if self.tls is not None and not self.uses_tls:
            raise ValueError("tls is set but url is not rediss://: use rediss://HOST:PORT "
                             "(plain redis:// never uses TLS), or sentinel.tls: true")
        return self

    @model_validator(mode="after")
    def _one_way_to_the_primary(self) -> RedisSettings:
        if self.sentinel is None:
            return self
        if "url" in self.model_fields_set:
            raise ValueError("url and sentinel are both set: with sentinel the primary's "
                             "address comes from the Sentinels; drop url (username, "
                             "password and db still apply)")
        if self.cluster:
            raise ValueError("cluster and sentinel are both set: a Redis Cluster promotes "
                             "its replicas itself; Sentinel watches a standalone primary")
        return self

    @model_validator(mode="after")
    def _cluster_has_database_0(self) -> RedisSettings:
        """Refused here, with the file's other problems: redis-py's cluster client raises
        on any other database at connect time — every command a traceback, ``run`` a
        failure that looks like Redis being down."""
        if not self.cluster or self.sentinel is not None:
            return self
        parts = urlsplit(self.url)
        path = parts.path.strip("/") if parts.scheme != "unix" else ""
        query = dict(parse_qsl(parts.query)).get("db", "")
        for db in (path, query):
            if db.isdigit() and int(db) != 0:
                raise ValueError(
                    f"a Redis Cluster has only database 0, and url selects database {db}: "
                    "drop it from the url (or end it with /0)")
        return self

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme in ("redis+sentinel", "sentinel", "redis-sentinel"):
            raise ValueError("a Sentinel URL is not taken here: set redis.sentinel "
                             "(master, nodes) instead (docs/configuration.md)")
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected a URL starting with redis://, rediss:// or unix:// "
                             "(for Sentinel: redis.sentinel)")
        if scheme != "unix":
            parts = urlsplit(value)
            try:
                parts.port  # noqa: B018 - urllib checks the port as it reads it
            except ValueError:  # redis-py raised it at connect time, a traceback
                port = parts.netloc.rpartition(":")[2]
                raise ValueError(f"port {port!r} is not a port (a number, 1 to 65535)") from None
            db = parts.path.strip("/")
            if db and not db.isdigit():  # redis-py would quietly use database 0
                raise ValueError(f"database {db!r} in the path is not a number (e.g. /0)")
        return value

    @property
    def uses_tls(self) -> bool:
        return self.url.startswith("rediss://") if self.sentinel is None else self.sentinel.tls

    @property
    def safe_url(self) -> str:
        if self.sentinel is not None:
            return f"sentinel {self.sentinel.master} at {','.join(self.sentinel.node_list)}"
        return redact_url(self.url)

    @property
    def tls_without_client_cert(self) -> bool:
        """TLS with no client certificate given (a server may refuse it by a reset)."""
        return self.uses_tls and (self.tls is None or self.tls.cert_file is None)


class ContainerSettings(StrictModel):
    """Defaults for every listener; each listener may override any of them."""

    poll_timeout: Duration = Field(
        default=timedelta(seconds=2),
    )
    """[XREADGROUP](https://redis.io/docs/latest/commands/xreadgroup/) `BLOCK`: how long one read
    waits when nothing is new. ≥ 1ms (`BLOCK 0` would block forever and the loop could not
    notice a stop). Also bounds how long `stop` waits for the read in progress."""
    batch_size: int = Field(default=100, ge=1, le=10_000)
    """XREADGROUP `COUNT`: entries read (and acknowledged) per round trip, 1–10,000"""
    concurrency: int = Field(default=8, ge=1, le=1024)
    """handlers in flight per listener (worker tasks; for a sync handler, threads). A slow or
    hung handler holds one of them; the others keep handling and the listener keeps reading"""
    shutdown_timeout: Duration = timedelta(seconds=30)
    """on stop, how long in-flight handlers may take before they are cancelled (their entries
    stay pending; exit code 1)"""
    handler_timeout: Duration = Field(
        default=timedelta(minutes=5),
    )
    """how long one handler call may run: past it an `async def` handler is cancelled, a sync
    handler's thread abandoned (a new one takes its place), and the delivery counts as failed
    (`HandlerTimeout`: retried, then dead-lettered). Set it above your slowest legitimate
    handler; `/healthz` reports a handler running past it"""

    middleware: list[str] = []
    """middlewares around every listener's handling, outermost first: provider names of the
    application container or `package.module:Class` (constructor arguments injected as for
    handlers); each listener's own `middleware` run inside these"""

    _waits = field_validator("poll_timeout", "handler_timeout")(at_least_1ms)


class RetrySettings(StrictModel):
    """How a failed entry is retried before it is dead-lettered."""

    max_deliveries: int = Field(default=5, ge=1, le=1000)
    """deliveries before an entry is dead-lettered"""
    backoff: Duration = Field(
        default=timedelta(seconds=1),
    )
    """first in-process retry delay, doubled per attempt; `0` leaves failed entries pending for
    the recovery job"""
    backoff_max: Duration = timedelta(minutes=1)
    """cap of the retry delay"""


class DeadLetterSettings(StrictModel):
    enabled: bool = True
    """`false`: failed entries are never dead-lettered (they stay pending)"""
    stream: str | None = Field(default=None,
                               json_schema_extra={"default_shown": "`{<stream>}:dlq`"})
    """the dead-letter stream; must share the stream's cluster hash slot (checked at load)"""


class PendingScanSettings(StrictModel):
    """The recovery job: reclaims entries of dead or hung consumers."""

    enabled: bool = True
    """schedule the recovery job for this listener"""
    interval: Duration = timedelta(seconds=30)
    """how often it runs"""
    min_idle: Duration = timedelta(seconds=30)
    """reclaim entries idle this long; owners renew theirs every `min_idle/3` (≥ 300ms)"""
    count: int = Field(default=100, ge=1, le=10_000)
    """entries reclaimed per run at most; they are claimed and handled one at a time, each
    acknowledged before the next (crash attribution, see reliability.md)"""
    warn_after: Duration = timedelta(minutes=5)
    """log entries pending longer than this"""

    @field_validator("min_idle")
    @classmethod
    def _min_idle(cls, value: timedelta) -> timedelta:
        # Owners renew every min_idle/3: below 300ms renewals would be constant traffic.
        if value < timedelta(milliseconds=300):
            raise ValueError("min_idle must be at least 300ms")
        return value


class DurabilitySettings(StrictModel):
    """Writes that survive a failover: each write is followed, in the same round trip, by
    WAIT, and counts only once this many replicas have it (replication is asynchronous:
    without it, a write the primary acknowledged may vanish with the primary)."""

    replicas: int = Field(ge=1)
    """how many replicas must have acknowledged the write (`WAIT numreplicas`)"""
    timeout: Duration = timedelta(milliseconds=100)
    """how long the write waits for them; fewer by then: `NotDurableError` (the entries
    are written on the primary, not yet on enough replicas)"""

    _wait = field_validator("timeout")(at_least_1ms)


class RateLimitSettings(StrictModel):
    """At most ``per_second`` handlings of the listener start per second (a token bucket:
    bursts of up to ``burst``); waiting entries stay in hand, renewed, outside
    ``handler_timeout``."""

    per_second: float = Field(gt=0, le=1_000_000)
    """handlings started per second, at most (fractions allowed: `0.5` is one every 2 s)"""
    burst: int | None = Field(default=None, ge=1, le=1_000_000, json_schema_extra={
        "default_shown": "`per_second` (at least 1)"})
    """how many may start at once after a quiet spell"""
    shared: bool = False
    """`true`: one bucket for every process of the group, in Redis
    (`{<stream>}:rate:<group>`, the server's clock); `false`: each process its own. While
    Redis cannot be asked, each process limits by its own bucket"""


class BatchSettings(StrictModel):
    """How a :class:`~streamboot.BatchHandler`'s batches are made (docs/batches.md)."""

    max_size: int | None = Field(default=None, ge=1, le=10_000, json_schema_extra={
        "default_shown": "the listener's `batch_size`"})
    """entries per `handle_batch` call, at most; above `batch_size`, a batch gathers
    several reads (up to `max_wait`)"""
    max_wait: Duration = timedelta(0)
    """how long a batch short of `max_size` may wait for more entries before it is
    handled (its entries are in hand meanwhile, renewed); `0s`: what one read brings is a
    batch"""

    @field_validator("max_wait")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value > timedelta(minutes=1):
            raise ValueError("must be between 0s and 1m: entries wait that long, in hand, "
                             "before their handler starts")
        return value


class IdempotencySettings(StrictModel):
    """Skip entries whose business key was already handled by this group."""

    key: str = Field(min_length=1)
    """payload field holding the business key; enables deduplication"""
    ttl: Duration = timedelta(hours=24)
    """how long a handled key is remembered"""
    prefix: str = "streamboot:done"
    """marker keys are `<prefix>:<group>:{<key>}`"""
    durability: DurabilitySettings | None = None
    """an `IdempotentScript` call returns only once `replicas` replicas have its effect and
    marker (WAIT, same round trip): short, it raises `NotDurableError`, the entry is not
    acked and its retry finds the marker (a no-op that waits again), so what a handler
    builds on survives a failover; absent: the primary's acknowledgement is enough"""


class RotationSettings(StrictModel):
    """Time-partitioned streams: a new physical key every ``period``, expiring after ``ttl``."""

    period: Duration = timedelta(hours=1)
    """one physical stream per period (≥ 1m)"""
    key_format: str = Field(min_length=1)
    """strftime pattern of the period keys, e.g. `orders:%Y%m%d%H`"""
    ttl: Duration = timedelta(hours=3)
    """each period stream's TTL, set at creation; must be ≥ period + precreate + drain_margin"""
    precreate: Duration = timedelta(minutes=5)
    """create the next period's stream (and group, and TTL) this early"""
    drain_margin: Duration = Field(
        default=timedelta(minutes=15),
    )
    """how long past its end a period stays subscribed (late writes of producers whose clock is
    behind are consumed live); after that it is released once drained, and still looked at
    every `check_interval` while it lives: late entries subscribe it again"""
    timezone: str = "UTC"
    """time zone of keys and boundaries"""
    check_interval: Duration = timedelta(seconds=30)
    """how often the rotation job runs"""

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
    """keep about this many entries (trimmed by the retention job, never past what a group still
    needs; the publisher does not trim)"""
    max_age: Duration | None = None
    """drop entries older than this"""
    approximate: bool = True
    """`XTRIM ~`"""
    interval: Duration = timedelta(minutes=5)
    """how often the retention job runs"""
    max_trim: int = Field(default=10_000, ge=1)
    """entries removed per run at most"""


class CleanupSettings(StrictModel):
    enabled: bool = True
    """run the cleanup job"""
    consumer_idle: Duration = timedelta(hours=1)
    """delete consumers idle this long that hold no pending entries"""
    interval: Duration = timedelta(minutes=5)
    """how often the cleanup job runs"""


class BackpressureSettings(StrictModel):
    """When producers must slow down: over ``max_length`` entries or ``max_lag`` unread."""

    max_length: int | None = Field(default=None, ge=1)
    """`Publisher.publish` refuses (or waits) while the stream holds this many entries"""
    max_lag: int | None = Field(default=None, ge=1)
    """`Publisher.publish` refuses (or waits) while the listener's group is this many
    entries behind"""
    mode: Literal["raise", "wait"] = "raise"
    """`raise`: `Backpressure` at once; `wait`: retry every `check_every` up to `wait_timeout`
    (`5s`), then raise"""
    wait_timeout: Duration = timedelta(seconds=5)
    """with `mode: wait`, how long a publish waits for room before it raises `Backpressure`"""
    check_every: Duration = timedelta(milliseconds=100)
    """how often the limits are read (a burst may overshoot by one window)"""


class PublishSettings(StrictModel):
    schema_version: int | None = Field(default=None, ge=1)
    """added to every published entry as a `schema_version` field"""
    backpressure: BackpressureSettings | None = None
    """limits a `Publisher` respects before it writes; absent: none"""
    durability: DurabilitySettings | None = None
    """`Publisher.publish` returns only once `replicas` replicas have the entries (WAIT,
    same round trip), else raises `NotDurableError` naming them; absent: the primary's
    acknowledgement is enough"""
    retry_for: Duration = timedelta(seconds=5)
    """how long a publish keeps trying while Redis is unreachable or failing over
    (refused, reset, timed out, no primary yet, `READONLY`, `TRYAGAIN`, `CLUSTERDOWN`),
    backing off from 50 ms up to 1 s, before it raises `PublishUnavailable`; `0s`: the
    first such error raises `PublishUnavailable` at once (the error as its
    `__cause__`). A write whose reply was lost may have happened:
    retried, it is written twice (at-least-once, as the listener is)"""


class AlertSettings(StrictModel):
    """Seed 002 §6.3's alarms; crossing one logs a warning once and raises a gauge."""

    max_pending_per_consumer: int | None = Field(default=1000, ge=1)
    """alert when one consumer holds more pending entries than this; `null` disables it"""
    max_oldest_pending_idle: Duration | None = timedelta(minutes=5)
    """alert when the oldest pending entry has been idle this long; `null` disables it"""
    max_oldest_pending_age: Duration | None = timedelta(minutes=15)
    """alert when the oldest pending entry was published this long ago (its id's time; held
    entries are renewed, so their idle stays small while they wait); `null` disables it"""
    max_lag: int | None = Field(default=100_000, ge=1)
    """alert when the group is this many entries behind the stream; `null` disables it"""


class ListenerSettings(StrictModel):
    """One subscription: a consumer of ``group`` on ``stream`` feeding ``handler``."""

    stream: str = Field(min_length=1)
    """the stream key"""
    group: str = Field(min_length=1, pattern=_NAME)
    """consumer group; created (with `MKSTREAM`) when missing"""
    consumer: str = Field(default_factory=default_consumer_name, min_length=1,
                          json_schema_extra={"default_shown": "`<hostname>-<pid>`"})
    """consumer name, unique per process so two replicas never share a pending list"""
    handler: str = Field(
        min_length=1,
    )
    """a provider name of the application container, or `package.module:Class` (constructor
    arguments injected from the providers of the same names)"""
    start_id: str = Field(
        default="0",
    )
    """where a **new** group starts: `0` = the whole stream, `$` = only entries added from now,
    or an entry id. It is not the read offset: the loop always reads its own pending entries,
    then `>`."""
    codec: Literal["flat", "json"] = "flat"
    """`flat`: one field per payload attribute (readable in `redis-cli`); nested values — lists,
    mappings, models — are JSON text in their field, read back as such; scalars are text, so a
    `str | int` field reads back as `str`. `json`: the payload as JSON in one field (exact
    types)"""
    json_field: str = "payload"
    """the field used by the `json` codec"""
    enabled: bool = True
    """`false` keeps the listener declared but not started"""
    poll_timeout: Duration | None = Field(default=None, json_schema_extra={
        "default_shown": "`container.poll_timeout`"})
    """this listener's own `poll_timeout` (see `container`)"""
    batch_size: int | None = Field(default=None, ge=1, le=10_000, json_schema_extra={
        "default_shown": "`container.batch_size`"})
    """this listener's own `batch_size` (see `container`)"""
    concurrency: int | None = Field(default=None, ge=1, le=1024, json_schema_extra={
        "default_shown": "`container.concurrency`"})
    """this listener's own `concurrency` (see `container`)"""
    shutdown_timeout: Duration | None = Field(default=None, json_schema_extra={
        "default_shown": "`container.shutdown_timeout`"})
    """this listener's own `shutdown_timeout` (see `container`)"""
    handler_timeout: Duration | None = Field(default=None, json_schema_extra={
        "default_shown": "`container.handler_timeout`"})
    """this listener's own `handler_timeout` (see `container`)"""
    retry: RetrySettings = RetrySettings()
    dead_letter: DeadLetterSettings = DeadLetterSettings()
    pending_scan: PendingScanSettings = PendingScanSettings()
    idempotency: IdempotencySettings | None = None
    """deduplication by a business key of the payload; absent: none (at-least-once)"""
    rotation: RotationSettings | None = None
    """one physical stream per period (seed 004's hourly rotation); absent: one stream"""
    retention: RetentionSettings | None = None
    """trimming by length or age, never past what a group still needs; absent: no trimming"""
    cleanup: CleanupSettings = CleanupSettings()
    publish: PublishSettings = PublishSettings()
    alerts: AlertSettings = AlertSettings()
    tracing: bool = False
    """OpenTelemetry (the `otel` extra): the listener's publisher writes the trace context
    into each entry, and each delivery is a consumer span continuing it, with retries and
    dead letters as span events"""
    partitions: int = Field(default=1, ge=1, le=1024)
    """1–1024: spread the stream over this many keys, each in its own hash slot:
    `{<stream>:p0}` … (each with its dead-letter stream `{<stream>:p0}:dlq`); the listener
    reads every one, and its `Publisher` routes by `partition_by`. Changing it later:
    docs/scaling.md"""
    partition_by: str | None = Field(default=None, min_length=1, json_schema_extra={
        "default_shown": "`ordering_key`, else round-robin"})
    """payload field whose value picks an entry's partition (`crc32(value) mod partitions`):
    the same value always goes to the same partition, so its entries stay in order"""
    middleware: list[str] = []
    """this listener's middlewares, outermost first, inside `container.middleware`
    (docs/middleware.md)"""
    rate_limit: RateLimitSettings | None = None
    """at most so many handlings started per second; absent: no limit"""
    batch: BatchSettings | None = None
    """how a `BatchHandler`'s batches are made; only for a `BatchHandler` (absent: one
    read's entries per batch)"""
    ordering_key: str | None = Field(default=None, min_length=1)
    """payload field: entries with the same value are never handled at the same time by one
    process, and are handled in stream order (a retried entry holds back the later entries
    of its key); different values run in parallel. Entries without the field are unordered"""

    @field_validator("tracing")
    @classmethod
    def _otel_installed(cls, value: bool) -> bool:
        from ..observability.tracing import INSTALL_HINT, INSTALLED

        if value and not INSTALLED:
            raise ValueError(INSTALL_HINT)
        return value

    @property
    def dead_letter_stream(self) -> str | None:
        if not self.dead_letter.enabled:
            return None
        return self.dead_letter.stream or colocated(self.stream, ":dlq")

    @property
    def routed_by(self) -> str | None:
        """The payload field that picks a partition (None: round-robin)."""
        return self.partition_by or self.ordering_key

    @model_validator(mode="after")
    def _partitioned(self) -> ListenerSettings:
        """A partition's hash tag is made by Streamboot, so the names it is made from must
        not carry one; and routing must follow the ordering key, or order is lost."""
        if self.partitions == 1:
            if self.partition_by is not None:
                raise ValueError("partition_by is set but partitions is 1: set partitions "
                                 "(≥ 2) to spread the stream, or remove partition_by")
            return self
        names = {"stream": self.stream}
        if self.rotation is not None:
            names["rotation.key_format"] = self.rotation.key_format
        for where, name in names.items():
            if "{" in name or "}" in name:
                raise ValueError(
                    f"{where} {name!r} has braces, but a partitioned stream's keys get their "
                    f"hash tags from Streamboot ({{{name}:p0}} …): remove the {{…}}")
        if self.dead_letter.stream is not None:
            raise ValueError("dead_letter.stream cannot be set on a partitioned listener: "
                             f"each partition has its own, {{{self.stream}:p0}}:dlq …")
        if (self.partition_by is not None and self.ordering_key is not None
                and self.partition_by != self.ordering_key):
            raise ValueError(
                f"partition_by ({self.partition_by!r}) and ordering_key "
                f"({self.ordering_key!r}) differ: entries of one ordering key would land in "
                "several partitions and lose their order; drop partition_by (it defaults to "
                "ordering_key) or make them the same")
        return self

    @model_validator(mode="after")
    def _dead_letter_in_same_slot(self) -> ListenerSettings:
        dlq = self.dead_letter_stream
        if self.partitions > 1:
            return self  # each partition's dead-letter stream is made in its slot
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


class MembershipSettings(StrictModel):
    """How the processes reading a partitioned listener share its partitions: each is a
    member with a heartbeat, each partition has a lease (docs/scaling.md)."""

    lease_ttl: Duration = timedelta(seconds=10)
    """a partition's lease lasts this long unless its owner renews it: a member killed,
    frozen or cut off from Redis hands its partitions over within `lease_ttl` plus one
    `heartbeat` (a member stopped with SIGTERM releases them at once)"""
    heartbeat: Duration = timedelta(seconds=1)
    """how often a member says it lives, renews its leases and rebalances; at most a
    third of `lease_ttl`, so that two late renewals in a row do not lose a lease"""
    member_id: str | None = Field(default=None, max_length=200)
    """a stable member id (a StatefulSet's pod name, say): a member restarted within
    `lease_ttl` takes its partitions back, one epoch up, without them moving meanwhile.
    Also `streamboot run --member-id`; none = the process's consumer name (`<host>-<pid>`)"""

    _waits = field_validator("lease_ttl", "heartbeat")(at_least_1ms)

    @field_validator("member_id")
    @classmethod
    def _one_word(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank: it names this member's consumer and its "
                             "place in the member list (leave it unset for <host>-<pid>)")
        if value is not None and (value != value.strip() or any(
                c.isspace() or c in "{}" for c in value)):
            raise ValueError(f"{value!r} must be one word, without spaces or braces: it "
                             "names this member's consumer and its place in the member list")
        return value

    @model_validator(mode="after")
    def _heartbeat_fits_the_lease(self) -> MembershipSettings:
        if self.heartbeat * 3 > self.lease_ttl:
            raise ValueError(
                f"membership.heartbeat ({format_duration(self.heartbeat)}) must be at most a "
                f"third of membership.lease_ttl ({format_duration(self.lease_ttl)}): a lease "
                "would lapse after one late renewal")
        return self


class SchedulerSettings(StrictModel):
    """APScheduler settings shared by the framework's jobs."""

    enabled: bool = True
    """start the APScheduler `AsyncIOScheduler`"""
    timezone: str = "UTC"
    """for cron-style jobs"""
    misfire_grace_time: Duration = timedelta(seconds=30)
    """a job that could not start on time still runs within this; every job runs with
    `max_instances=1`, `coalesce=True`"""


class MetricsSettings(StrictModel):
    """Prometheus /metrics and /healthz, served by ``streamboot run``."""

    enabled: bool = False
    """serve `/metrics` and `/healthz` from `streamboot run`"""
    host: str = "127.0.0.1"
    """bind address"""
    port: int = Field(default=9464, ge=0, le=65535)
    """`0` picks a free port"""
    refresh: Duration = timedelta(seconds=15)
    """stream gauges and alert checks"""


class LoggingSettings(StrictModel):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """loguru level"""
    json_lines: bool = False
    """one JSON object per line (loguru `serialize`) instead of text"""
    tracebacks: bool = Field(
        default=False,
    )
    """full tracebacks of handler failures (a dead-lettered entry's last one); otherwise each
    failure is one line with its reason. Always on at `DEBUG`"""


class ApplicationSettings(StrictModel):
    """Who the application is: its name and the DI container class that holds its beans."""

    name: str = "streamboot"
    """shown in logs"""
    container: str | None = Field(
        default=None,
    )
    """`package.module:Class`, a `StreambootContainer` subclass holding your beans; none = the
    framework's own container"""
    gc: Literal["default", "tuned"] = "default"
    """`tuned`: once started (`streamboot run`, or an `EmbeddedApp`), what start-up built is
    frozen out of the garbage collector's walks and young collections come at 10,000
    allocations, not 700 — measured +22 % for a pydantic listener and +11 % without
    validation at COUNT 500, within noise at COUNT 100 (docs/performance.md, "The
    garbage collector"); `default`: CPython's own settings"""


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
    membership: MembershipSettings = MembershipSettings()
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
        reads = sum((3 if listener.rotation is not None else 1) * listener.partitions
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

    @model_validator(mode="after")
    def _wait_below_socket_timeout(self) -> AppSettings:
        """A WAIT rides in the write's round trip: a reply that takes ``timeout`` must not
        be cut off by the socket's timeout first (the write would then be retried as if
        Redis were down, and written again, and no ``NotDurableError`` would say why)."""
        limit = self.redis.socket_timeout
        for name, listener in self.listeners.items():
            for where, durability in (("publish", listener.publish.durability),
                                      ("idempotency", listener.idempotency.durability
                                       if listener.idempotency else None)):
                if durability is not None and durability.timeout >= limit:
                    raise ValueError(
                        f"listeners.{name}: {where}.durability.timeout "
                        f"({durability.timeout.total_seconds():g}s) must be shorter than "
                        f"redis.socket_timeout ({limit.total_seconds():g}s): the WAIT's "
                        "reply would be cut off by the socket's timeout first")
        return self

    @model_validator(mode="after")
    def _renewal_fits_min_idle(self) -> AppSettings:
        """Entries not renewed for ``min_idle`` can be taken over by another consumer. A
        renewal whose connection went silent is tried again on a new one, so a reconnect
        must fit well within ``min_idle`` (see RENEWAL_CONNECT_SHARE); the sample once
        shipped ``min_idle: 2s`` against 10 s of socket timeout and lost live work."""
        connect = self.redis.socket_connect_timeout
        idles = {name: listener.pending_scan.min_idle
                 for name, listener in self.listeners.items() if listener.enabled}
        short = {name: idle for name, idle in idles.items()
                 if connect * RENEWAL_CONNECT_SHARE > idle}
        if short:  # every listener at once, with one fix that serves them all
            where = ", ".join(f"listeners.{name}" for name in short)
            shown = ", ".join(format_duration(idle) for idle in short.values())
            shortest = min(short.values())
            raise ValueError(
                f"{where}: pending_scan.min_idle ({shown}) is too short for "
                f"redis.socket_connect_timeout ({format_duration(connect)}): entries not "
                "renewed within min_idle can be taken over by another consumer, and a renewal "
                "that has to reconnect may wait that long for its connection; set "
                "redis.socket_connect_timeout to at most "
                f"{format_duration(shortest / RENEWAL_CONNECT_SHARE)}, or pending_scan.min_idle "
                f"to at least {format_duration(connect * RENEWAL_CONNECT_SHARE)}")
        return self

    def renewal_timeout(self) -> timedelta:
        """How long the ownership renewal's connection waits for a reply (client.py): a
        tenth of the shortest ``min_idle`` of the listeners it serves, at most
        ``redis.socket_timeout``."""
        idles = [listener.pending_scan.min_idle for listener in self.listeners.values()
                 if listener.enabled] or [PendingScanSettings().min_idle]
        return min(self.redis.socket_timeout, min(idles) / RENEWAL_REPLY_SHARE)

    @model_validator(mode="after")
    def _leases_cover_a_read(self) -> AppSettings:
        """A member of a partitioned listener reads only while its lease covers the whole
        read (listener/tenure.py): a BLOCK longer than what a lease trusts leaves after
        each heartbeat would never be sent."""
        membership = self.membership
        trusted = membership.lease_ttl * LEASE_TRUST - membership.heartbeat
        for name, listener in self.listeners.items():
            block = listener.poll_timeout or self.container.poll_timeout
            if listener.partitions > 1 and block + LEASE_READ_MARGIN > trusted:
                inherited = listener.poll_timeout is None
                limit = max(trusted - LEASE_READ_MARGIN, timedelta(0))
                raise ValueError(
                    f"listeners.{name}: poll_timeout ({format_duration(block)}"
                    f"{', from container.poll_timeout' if inherited else ''}) must end well "
                    f"inside a lease: at most {format_duration(limit)} here "
                    f"({LEASE_TRUST:g} × membership.lease_ttl "
                    f"{format_duration(membership.lease_ttl)} − membership.heartbeat "
                    f"{format_duration(membership.heartbeat)} − "
                    f"{format_duration(LEASE_READ_MARGIN)}); shorten "
                    f"{'container.poll_timeout' if inherited else 'poll_timeout'} or "
                    "lengthen membership.lease_ttl")
        return self

    @model_validator(mode="after")
    def _cleanup_spares_live_consumers(self) -> AppSettings:
        """A consumer blocked in its read looks idle to Redis 7.0 until the read returns:
        with ``consumer_idle`` not well above ``poll_timeout``, cleanup would delete live
        consumers (a new user's trial saw it at 1s against a 2s poll)."""
        for name, listener in self.listeners.items():
            block = listener.poll_timeout or self.container.poll_timeout
            idle = listener.cleanup.consumer_idle
            if listener.cleanup.enabled and idle < 2 * block:
                raise ValueError(
                    f"listeners.{name}: cleanup.consumer_idle ({format_duration(idle)}) must be "
                    f"at least twice poll_timeout ({format_duration(block)}): a consumer "
                    "blocked in its read looks idle, and cleanup would delete it while it "
                    "lives")
        return self
