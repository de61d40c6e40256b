"""OpenTelemetry: the publisher writes the trace context into the entry, the listener
continues it in one consumer span per delivery; retries and the dead letter are events;
without `tracing: true` nothing is written or traced; without the extra, `tracing: true`
is a clear problem of the file."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from streamboot.config import settings_from_mapping
from streamboot.testing import run_app
from tests.test_testing_kit import Item

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """The application's own TracerProvider, as a user sets it up (once per process)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(tracer_provider)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    _EXPORTER.clear()
    return _EXPORTER


def app_settings(tracing: bool = True) -> Any:
    listener = {"group": "g", "tracing": tracing,
                "retry": {"max_deliveries": 2, "backoff": "10ms"}}
    return settings_from_mapping({
        "container": {"poll_timeout": "50ms"},
        "listeners": {
            "orders": {**listener, "stream": "traced",
                       "handler": "tests.test_testing_kit:Keeps"},
            "failing": {**listener, "stream": "traced-failing",
                        "handler": "tests.test_testing_kit:Declines"}}})


def consumer_spans(exporter: InMemorySpanExporter, stream: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"process {stream}"]


async def test_the_consumer_span_continues_the_producers_trace(
        streamboot_url: str, spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("checkout-service")
    async with run_app(app_settings(), url=streamboot_url) as app:
        with tracer.start_as_current_span("checkout") as parent:
            entry = await app.publish("orders", Item(sku="a", qty=1))
        await app.handled(entry)
        fields = (await app.operator.xrange("traced"))[0].fields
    assert fields["traceparent"].split("-")[1] == f"{parent.get_span_context().trace_id:032x}"
    (span,) = consumer_spans(spans, "traced")
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert dict(span.attributes or {}) == {
        "messaging.system": "redis", "messaging.operation.type": "process",
        "messaging.destination.name": "traced", "messaging.consumer.group.name": "g",
        "messaging.redis.consumer": app.application.settings.listeners["orders"].consumer,
        "messaging.message.id": entry, "messaging.redis.delivery_count": 1}
    assert span.status.status_code is StatusCode.UNSET


async def test_retries_and_the_dead_letter_are_span_events(
        streamboot_url: str, spans: InMemorySpanExporter) -> None:
    async with run_app(app_settings(), url=streamboot_url) as app:
        with trace.get_tracer("t").start_as_current_span("request"):
            entry = await app.publish("failing", Item(sku="x", qty=1))
        await app.dead_lettered(entry)
    count = "messaging.redis.delivery_count"
    first, second = sorted(consumer_spans(spans, "traced-failing"),
                           key=lambda s: str((s.attributes or {})[count]))
    assert [e.name for e in first.events] == ["exception", "retry"]
    assert [e.name for e in second.events] == ["exception", "dead_letter"]
    assert dict(second.events[1].attributes or {})["reason"] == "max_deliveries"
    assert first.status.status_code is second.status.status_code is StatusCode.ERROR
    assert first.context.trace_id == second.context.trace_id  # both continue the request


async def test_without_tracing_nothing_is_written_or_traced(
        streamboot_url: str, spans: InMemorySpanExporter) -> None:
    async with run_app(app_settings(tracing=False), url=streamboot_url) as app:
        with trace.get_tracer("t").start_as_current_span("request"):
            entry = await app.publish("orders", Item(sku="a", qty=1))
        await app.handled(entry)
        fields = (await app.operator.xrange("traced"))[0].fields
    assert "traceparent" not in fields
    assert consumer_spans(spans, "traced") == []


def test_without_the_extra_tracing_true_is_a_problem_of_the_file_and_the_rest_runs() -> None:
    """opentelemetry made unimportable in a fresh interpreter, as when the extra is absent."""
    probe = """
import sys
sys.modules["opentelemetry"] = None
from streamboot.config import settings_from_mapping
from streamboot.errors import ConfigError
from streamboot.observability import tracing
assert not tracing.INSTALLED
base = {"stream": "s", "group": "g", "handler": "m:H"}
settings_from_mapping({"listeners": {"l": base}})  # tracing off: fine
try:
    settings_from_mapping({"listeners": {"l": {**base, "tracing": True}}})
except ConfigError as exc:
    print(exc)
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("<settings>: listeners.l.tracing: tracing needs "
                                   "OpenTelemetry: pip install 'streamboot[otel]' (got True)")
