"""Traces (OpenTelemetry): one trace per request, API → Kafka → worker → LLM → completion → webhook.

A few manual spans through the OpenTelemetry *API* only. Without OTEL_EXPORTER_OTLP_ENDPOINT no SDK
provider is installed: the API's tracer is a no-op, `inject` finds no valid span and returns None, so
nothing is added to messages and tracing costs a context switch per span at most.

The trace crosses Kafka in the message itself (W3C `traceparent` in the request envelope and on the
completion event), never through process globals: the worker may be another process or machine.

Attributes never hold secrets or user data: ids, kinds, models, token counts, statuses only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.config import Settings

__all__ = ["SpanKind", "Status", "StatusCode", "extract", "inject", "setup", "span", "tracer"]

tracer = trace.get_tracer("gigaoffice")
_propagator = TraceContextTextMapPropagator()


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    context: Context | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span that, on an exception, records its type only: exception messages may quote user data
    (a model's answer, a request's text), which must never reach a trace."""
    with tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__name__)
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def inject() -> str | None:
    """The current span as a W3C `traceparent`, or None when tracing is off (nothing to carry)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def extract(traceparent: str | None) -> Context | None:
    """The remote parent a message carried (None: the message started no trace)."""
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


def setup(settings: Settings) -> Any | None:
    """Install the SDK provider exporting to OTLP/HTTP when an endpoint is set; called once by
    open_runtime, which shuts the returned provider down on exit. None: tracing stays off, or a
    provider is already installed (another runtime of this process, a test's in-memory one)."""
    if not settings.otel_exporter_otlp_endpoint:
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    # Imported only here: with tracing off, the SDK is never loaded.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider
