"""OpenTelemetry traces, optional (``pip install 'streamboot[otel]'``; ``tracing: true`` on
a listener).

A listener's :class:`~streamboot.Publisher` writes the current trace context into the
entry (W3C ``traceparent``/``tracestate`` fields); the listener continues it: one consumer
span per delivery (``process <stream>``), a child of the producer's span, with the stream,
group, consumer, entry id and delivery count as attributes. A failed delivery sets the
span's status to error and records the exception; a retry, a "left pending" and a dead
letter are span events. Nothing is exported here: the application configures its own
``TracerProvider`` and exporter, as with any OpenTelemetry instrumentation.

When the extra is not installed this module is never on the hot path: the dispatcher and
the publisher decide once, at construction, whether to trace at all.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

INSTALLED = importlib.util.find_spec("opentelemetry") is not None \
    and importlib.util.find_spec("opentelemetry.trace") is not None
"""Whether the ``otel`` extra (opentelemetry-api) can be imported."""

FIELDS = frozenset({"traceparent", "tracestate"})
"""The entry fields the trace context travels in (never part of a payload)."""

INSTALL_HINT = "tracing needs OpenTelemetry: pip install 'streamboot[otel]'"

if INSTALLED:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode


def inject(fields: MutableMapping[str, str]) -> None:
    """Write the current trace context (when there is one) into an entry's fields."""
    propagate.inject(fields)


def without_trace_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """The fields a payload is built from (a model that forbids extra keys must not see the
    trace context)."""
    return {k: v for k, v in fields.items() if k not in FIELDS}


class ConsumerTracer:
    """One listener's consumer spans."""

    def __init__(self, stream: str, group: str, consumer: str) -> None:
        self._tracer = trace.get_tracer("streamboot")
        self._name = f"process {stream}"
        self._attributes: dict[str, str | int] = {
            "messaging.system": "redis", "messaging.operation.type": "process",
            "messaging.destination.name": stream, "messaging.consumer.group.name": group,
            "messaging.redis.consumer": consumer}

    @contextmanager
    def span(self, entry_id: str, fields: Mapping[str, str], deliveries: int) -> Iterator[Any]:
        parent = propagate.extract(fields) if "traceparent" in fields else None
        attributes: dict[str, str | int] = {
            **self._attributes, "messaging.message.id": entry_id,
            "messaging.redis.delivery_count": deliveries}
        with self._tracer.start_as_current_span(
                self._name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes,
                record_exception=False, set_status_on_exception=False) as span:
            yield span


    @contextmanager
    def batch_span(self, entries: Sequence[Any]) -> Iterator[Any]:
        """One span for a batch handler's call, linked to each entry's producer span (a
        batch has many parents: OpenTelemetry's messaging conventions link them)."""
        links = []
        for entry in entries:
            if "traceparent" in entry.fields:
                context = trace.get_current_span(
                    propagate.extract(entry.fields)).get_span_context()
                if context.is_valid:
                    links.append(trace.Link(context))
        attributes: dict[str, str | int] = {
            **self._attributes, "messaging.batch.message_count": len(entries)}
        with self._tracer.start_as_current_span(
                self._name, kind=SpanKind.CONSUMER, attributes=attributes, links=links,
                record_exception=False, set_status_on_exception=False) as span:
            yield span


def event(name: str, **attributes: str | int | float) -> None:
    """An event on the current delivery's span (a retry, a dead letter); nothing without
    tracing or outside a traced delivery."""
    if not INSTALLED:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


def failed(exc: BaseException) -> None:
    """The current delivery's span ends in error, with the exception recorded."""
    if not INSTALLED:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
