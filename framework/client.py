"""Build redis-py clients from ``RedisSettings`` (standalone, cluster, or a primary found
through Sentinel).

The async client serves everything on the event loop; a small synchronous one serves the
ownership renewal thread, which must keep working while the loop is busy, with timeouts
derived from ``pending_scan.min_idle``.

With ``redis.sentinel`` every client is redis-py's Sentinel-managed one: a connection asks
the Sentinels for the primary's address when it opens, and a connection that meets
``READONLY`` (its node was demoted) closes itself and raises a connection error, so the
caller's ordinary reconnect finds the new primary. The listeners' own reading connections
are made from the same pool's class and arguments (wire/operator.py), so they follow too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis
import redis.cluster
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import HiredisRespSerializer
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel as SyncSentinel
from redis.utils import HIREDIS_AVAILABLE

from .config.models import (
    CLUSTER_POOL_DEFAULT,
    STANDALONE_POOL_DEFAULT,
    AppSettings,
    RedisSettings,
)
from .listener.ownership import SyncClient
from .wire.decoding import WIRE_ERRORS, to_wire
from .wire.operator import RedisClient


def _options(settings: RedisSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "decode_responses": True,
        # Non-UTF-8 bytes in an entry decode to lone surrogates instead of failing the whole
        # reply, and encode back to the same bytes (wire/decoding.py).
        "encoding_errors": WIRE_ERRORS,
        "socket_timeout": settings.socket_timeout.total_seconds(),
        "socket_connect_timeout": settings.socket_connect_timeout.total_seconds(),
        "client_name": settings.client_name,
        "health_check_interval": 30,
    }
    if settings.username is not None:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    # Standalone readers have connections of their own (wire/readers.py): the pool serves acks,
    # scripts and handlers, and a burst waits for a free connection. On Cluster every read
    # is pooled and redis-py's cluster pool does not wait (MaxConnectionsError at 100 per
    # node): a larger default, so a burst of a few hundred users does not break it.
    options["max_connections"] = settings.max_connections or (
        CLUSTER_POOL_DEFAULT if settings.cluster else STANDALONE_POOL_DEFAULT)
    if settings.db is not None and not settings.cluster:
        options["db"] = settings.db
    if settings.sentinel is not None and settings.sentinel.tls:
        options["ssl"] = True  # a URL says it with rediss://; here the pool is told
    if settings.tls is not None:  # only with TLS (the settings refuse it otherwise)
        tls = settings.tls
        options |= {"ssl_ca_certs": tls.ca_file, "ssl_certfile": tls.cert_file,
                    "ssl_keyfile": tls.key_file,
                    "ssl_cert_reqs": "required" if tls.verify else "none",
                    "ssl_check_hostname": tls.check_hostname and tls.verify}
    return options


# One quick retry hides a stale pooled connection; longer outages are the listener
# loop's business (it backs off and logs), not hidden inside a single command.
_BACKOFF = ExponentialWithJitterBackoff(base=0.05, cap=0.5)


_PACKER = HiredisRespSerializer() if HIREDIS_AVAILABLE else None


def _pack(args: tuple[Any, ...]) -> list[bytes]:
    assert _PACKER is not None
    try:
        return _PACKER.pack(*args)  # type: ignore[no-any-return]
    except UnicodeEncodeError:  # a string carrying escaped raw bytes (wire/decoding.py)
        wire: list[Any] = [to_wire(a) if isinstance(a, str) else a for a in args]
        return _PACKER.pack(*wire)  # type: ignore[no-any-return]


class HiredisPackingConnection(Connection):
    """redis-py's asyncio connection encodes commands in pure Python (about 3µs per id of
    a 100-id XACK); its sync connection already uses hiredis' C encoder. This wires that
    same encoder (redis-py's own ``HiredisRespSerializer``) into the asyncio one."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


class HiredisPackingSentinelConnection(SentinelManagedConnection):
    """The same encoder on a Sentinel-managed connection (it finds the primary itself)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return _pack(args)


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool with the blocking pool's wait for a free connection (as
    the standalone client has: a burst waits instead of "Too many connections")."""


def _sentinel_options(settings: RedisSettings, socket_timeout: float,
                      retry: Retry | SyncRetry) -> dict[str, Any]:
    """The Sentinels' own connections: their credentials, the data connections' timeouts
    (the renewal's short one for the renewal client: asking where the primary is must not
    outlast a renewal), TLS when the data nodes use it — and no retries of their own
    (redis-py's default backs off for seconds per Sentinel): the next Sentinel is asked
    at once, and the caller's reconnect loop is the retry."""
    sentinel = settings.sentinel
    assert sentinel is not None
    options: dict[str, Any] = {
        "retry": retry,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout.total_seconds(),
        "decode_responses": True,
    }
    if sentinel.username is not None:
        options["username"] = sentinel.username
    if sentinel.password is not None:
        options["password"] = sentinel.password.get_secret_value()
    if sentinel.tls:
        data = _options(settings)
        options |= {k: v for k, v in data.items() if k.startswith("ssl")}
    return options


def _async_sentinel_client(settings: RedisSettings, options: dict[str, Any]) -> Redis:
    sentinel = settings.sentinel
    assert sentinel is not None
    manager = AsyncSentinel(sentinel.addresses(), sentinel_kwargs=_sentinel_options(
        settings, options["socket_timeout"], Retry(NoBackoff(), retries=0)))
    if HIREDIS_AVAILABLE and not sentinel.tls:
        options["connection_class"] = HiredisPackingSentinelConnection
    client: Redis = manager.master_for(
        sentinel.master, redis_class=Redis,
        connection_pool_class=BlockingSentinelConnectionPool,
        timeout=options["socket_timeout"], **options)
    return client


def _sync_sentinel_client(settings: RedisSettings, options: dict[str, Any]) -> redis.Redis:
    sentinel = settings.sentinel
    assert sentinel is not None
    options.pop("max_connections", None)  # the sync clients hold one or two connections
    manager = SyncSentinel(sentinel.addresses(), sentinel_kwargs=_sentinel_options(
        settings, options["socket_timeout"], SyncRetry(NoBackoff(), retries=0)))
    client: redis.Redis = manager.master_for(sentinel.master, redis_class=redis.Redis,
                                             **options)
    return client


def build_client(settings: RedisSettings) -> RedisClient:
    """Decoded (str) replies, hiredis when installed, timeouts from the settings. Close
    it with :func:`close_client` (with Sentinel, the Sentinels' connections too)."""
    options = _options(settings) | {"retry": Retry(_BACKOFF, retries=1)}
    if settings.sentinel is not None:
        return _async_sentinel_client(settings, options)
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **options)
    # A burst (many handlers, many retries at once) waits for a free connection instead
    # of failing with "Too many connections".
    if HIREDIS_AVAILABLE and settings.url.startswith("redis://"):
        options["connection_class"] = HiredisPackingConnection
    pool = BlockingConnectionPool.from_url(settings.url, timeout=options["socket_timeout"],
                                           **options)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def build_sync_client(settings: RedisSettings) -> SyncClient:
    options = _options(settings) | {"retry": SyncRetry(_BACKOFF, retries=1)}
    if settings.sentinel is not None:
        return _sync_sentinel_client(settings, options)
    if settings.cluster:
        return redis.cluster.RedisCluster.from_url(settings.url, **options)
    return redis.Redis.from_url(settings.url, **options)


def build_renewal_client(settings: AppSettings) -> SyncClient:
    """The ownership renewal's connection (listener/ownership.py). It must never wait
    longer than its entries can afford: a reply is awaited a tenth of the shortest
    ``min_idle`` at most (``AppSettings.renewal_timeout``), and redis-py retries nothing —
    the renewal thread tries again itself, at once, on a new connection."""
    redis_settings = settings.redis
    options = _options(redis_settings) | {
        "socket_timeout": settings.renewal_timeout().total_seconds(),
        "retry": SyncRetry(NoBackoff(), retries=0)}
    if redis_settings.sentinel is not None:
        return _sync_sentinel_client(redis_settings, options)
    if redis_settings.cluster:
        return redis.cluster.RedisCluster.from_url(redis_settings.url, **options)
    return redis.Redis.from_url(redis_settings.url, **options)


async def redis_client_resource(settings: RedisSettings) -> AsyncIterator[RedisClient]:
    """The DI Resource: one client per application, closed at shutdown."""
    client = build_client(settings)
    try:
        yield client
    finally:
        await close_client(client)


async def close_client(client: RedisClient) -> None:
    """Close a client of :func:`build_client`: its pool, and with Sentinel the
    Sentinels' own connections, which the client does not own."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


def renewal_client_resource(settings: AppSettings) -> Iterator[SyncClient]:
    """The DI Resource of the renewal thread's client, closed at shutdown."""
    client = build_renewal_client(settings)
    try:
        yield client
    finally:
        close_sync_client(client)


def close_sync_client(client: SyncClient) -> None:
    """Close a client of :func:`build_sync_client` or :func:`build_renewal_client`: with
    Sentinel the Sentinels' own connections too, and with a Cluster every node's pool —
    redis-py 8's ``RedisCluster.close`` releases its nodes' clients but leaves the pools
    ``from_url`` made open (their ``auto_close_connection_pool`` is off)."""
    if isinstance(client, redis.cluster.RedisCluster):
        nodes = client.get_nodes()
        client.close()
        for node in nodes:
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
        return
    client.close()
    pool = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", []):
        sentinel.close()
