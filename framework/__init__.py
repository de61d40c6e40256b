"""Streamboot: declarative Redis Streams consumers — YAML listeners, typed handlers, DI."""

from framework.application import Application
from framework.codecs import FlatCodec, JsonCodec, PayloadError
from framework.config import AppSettings, ConfigError, load_settings
from framework.di import StreambootContainer
from framework.errors import HandlerResolutionError, NoGroupError, StreambootError, WrongTypeError
from framework.handler import StreamHandler
from framework.listener.container import ListenerContainer
from framework.listener.spec import ListenerSpec
from framework.message import Message
from framework.operator import RedisOperator
from framework.records import (
    AutoClaimResult,
    ConsumerInfo,
    GroupInfo,
    PendingEntry,
    PendingSummary,
    StreamEntry,
    StreamInfo,
)

__all__ = [
    "AppSettings",
    "Application",
    "AutoClaimResult",
    "ConfigError",
    "ConsumerInfo",
    "FlatCodec",
    "GroupInfo",
    "HandlerResolutionError",
    "JsonCodec",
    "ListenerContainer",
    "ListenerSpec",
    "Message",
    "NoGroupError",
    "PayloadError",
    "PendingEntry",
    "PendingSummary",
    "RedisOperator",
    "StreamEntry",
    "StreamHandler",
    "StreamInfo",
    "StreambootContainer",
    "StreambootError",
    "WrongTypeError",
    "load_settings",
]
