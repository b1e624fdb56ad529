"""Traces: one request yields one connected trace, API → Kafka → worker → LLM → completion → webhook.

The API (in-process ASGI) and the worker run in this process, but the worker's task is started before
any request span exists and its handler tasks come from the consumer loop: the only way the trace can
reach the worker is the `traceparent` the envelope carried through the real broker. The parent links
are checked to be *remote* (extracted from a message), not inherited from process state.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.db.session import create_engine, create_session_factory
from service.schemas.envelope import RequestEnvelope
from service.schemas.events import StatusEvent
from service.webhooks.dispatcher import WebhookDispatcher
from tests.support import SEED_EXAMPLE, make_settings, read_topic, running_service


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)  # once per process: the API allows no second provider
    yield memory
    provider.shutdown()  # the exporter stops keeping spans for whatever runs after this module


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


def _parent_is(child: ReadableSpan, parent: ReadableSpan, *, remote: bool = False) -> None:
    assert child.parent is not None, child.name
    assert child.parent.span_id == parent.context.span_id, (child.name, parent.name)
    assert child.context.trace_id == parent.context.trace_id
    assert child.parent.is_remote is remote, child.name


async def test_one_request_is_one_connected_trace(
    postgres_url: str, kafka_bootstrap: str, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    settings = make_settings(postgres_url, kafka_bootstrap)
    async with running_service(settings) as svc:
        response = await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})
        assert response.status_code == 202, response.text
        request_id = response.json()["id"]
        assert (await svc.wait_final(request_id))["status"] == "completed"

    # The request's record on the broker carries the API's publish span.
    [record] = await read_topic(kafka_bootstrap, settings.kafka_topic_requests, 1)
    envelope = RequestEnvelope.from_bytes(record.value)
    assert envelope.traceparent
    # The completion event, as the broker holds it, goes to the webhook intake: its span joins the trace.
    events = [
        StatusEvent.from_bytes(r.value)
        for r in await read_topic(kafka_bootstrap, settings.kafka_topic_responses, 2)
    ]
    completed = next(event for event in events if event.status == "completed")
    assert completed.traceparent
    engine = create_engine(settings)
    try:
        await WebhookDispatcher(settings, create_session_factory(engine)).enqueue([completed])
    finally:
        await engine.dispose()

    spans = list(exporter.get_finished_spans())
    api = _one(spans, "api.submit")
    publish = _one(spans, f"publish {settings.kafka_topic_requests}")
    consume = _one(spans, f"process {settings.kafka_topic_requests}")
    claim = _one(spans, "worker.claim")
    prompt = _one(spans, "worker.prompt")
    [chat] = [span for span in spans if span.name.startswith("chat")]
    validate = _one(spans, "worker.validate")
    completion = _one(spans, f"publish {settings.kafka_topic_responses}")
    webhook = _one(spans, "webhook.enqueue")

    assert api.parent is None and api.kind is SpanKind.SERVER
    assert {span.context.trace_id for span in spans} == {api.context.trace_id}  # one trace, nothing else
    _parent_is(publish, api)
    assert publish.kind is SpanKind.PRODUCER
    assert envelope.traceparent.split("-")[2] == f"{publish.context.span_id:016x}"
    _parent_is(consume, publish, remote=True)  # taken from the message, not from this process
    assert consume.kind is SpanKind.CONSUMER
    for step in (claim, prompt, chat, validate, completion):
        _parent_is(step, consume)
    _parent_is(webhook, completion, remote=True)

    # GenAI semantic conventions on the LLM call; no prompt, answer or key anywhere.
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.system"] == "dryrun"
    assert attributes["gen_ai.request.model"]
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert chat.kind is SpanKind.CLIENT
    query = str(SEED_EXAMPLE["query_text"])
    for span in spans:
        for value in (span.attributes or {}).values():
            assert not (isinstance(value, str) and query in value), span.name
