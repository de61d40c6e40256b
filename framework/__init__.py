"""Streamboot: declarative Redis Streams consumers — YAML listeners, typed handlers, DI.

What users write comes from here: the handler base class and what it receives, the
application, the producer, the helpers handlers use, the codecs and every error. The
parts behind them (``ListenerSpec``, ``ListenerContainer``, the record types) stay
importable from their modules, and may change between minor versions.
"""

from .application import Application
from .client import build_client, close_client
from .codecs import Codec, FlatCodec, JsonCodec
from .config import AppSettings, load_settings
from .devserver import RedisServer
from .di import StreambootContainer
from .errors import (
    Backpressure,
    BatchEntryError,
    ConfigError,
    ConfigProblem,
    DuplicateListenerError,
    HandlerResolutionError,
    HandlerTimeout,
    InvalidDuration,
    LockNotAcquired,
    MalformedDeadLetter,
    MissingStreamError,
    MissingVariableError,
    NoGroupError,
    NoMarkerError,
    NotDurableError,
    NotFound,
    PayloadError,
    PublishUnavailable,
    RedisServerError,
    RedisServerNotFound,
    StartupError,
    StreambootError,
    UnpublishableError,
    UsageError,
    WrongTypeError,
)
from .handler import BatchFailures, BatchHandler, StreamHandler
from .inbox import Inbox
from .jobs.clock import Clock, FakeClock, SystemClock
from .listener.idempotency import IdempotentScript
from .lock import SingleInstanceLock
from .message import Message
from .middleware import CallNext, Middleware, RateLimiter
from .publisher import EntryId, Publisher
from .web import EmbeddedApp
from .wire.operator import RedisClient, RedisOperator

__all__ = [
    "AppSettings",
    "Application",
    "Backpressure",
    "BatchEntryError",
    "BatchFailures",
    "BatchHandler",
    "CallNext",
    "Clock",
    "Codec",
    "ConfigError",
    "ConfigProblem",
    "DuplicateListenerError",
    "EmbeddedApp",
    "EntryId",
    "FakeClock",
    "FlatCodec",
    "HandlerResolutionError",
    "HandlerTimeout",
    "IdempotentScript",
    "Inbox",
    "InvalidDuration",
    "JsonCodec",
    "LockNotAcquired",
    "MalformedDeadLetter",
    "Message",
    "Middleware",
    "MissingStreamError",
    "MissingVariableError",
    "NoGroupError",
    "NoMarkerError",
    "NotDurableError",
    "NotFound",
    "PayloadError",
    "PublishUnavailable",
    "Publisher",
    "RateLimiter",
    "RedisClient",
    "RedisOperator",
    "RedisServer",
    "RedisServerError",
    "RedisServerNotFound",
    "SingleInstanceLock",
    "StartupError",
    "StreamHandler",
    "StreambootContainer",
    "StreambootError",
    "SystemClock",
    "UnpublishableError",
    "UsageError",
    "WrongTypeError",
    "build_client",
    "close_client",
    "load_settings",
]
