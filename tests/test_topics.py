"""Topic creation at start: made once, logged once, and a topic with the wrong partition count
(auto-created by the broker, or by hand) is reported with the fix."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.messaging.kafka import ensure_topics
from tests.support import captured_logs, make_settings


async def test_topics_are_created_once_and_logged_once(kafka_bootstrap: str) -> None:
    settings = make_settings("sqlite+aiosqlite://", kafka_bootstrap)
    with captured_logs() as logs:
        await ensure_topics(settings)
        await ensure_topics(settings)  # the API, the worker and the dispatcher of `up` each ask
    created = [line for line in logs if "created topics" in line]
    assert len(created) == 1, created
    assert not any("partition(s)" in line for line in logs)


async def test_a_topic_with_another_partition_count_is_reported_with_the_fix(kafka_bootstrap: str) -> None:
    settings = make_settings("sqlite+aiosqlite://", kafka_bootstrap, kafka_topic_partitions=3)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        # What a broker with auto.create.topics.enable does on a client's first use: its own default.
        await admin.create_topics([NewTopic(settings.kafka_topic_requests, 1, 1)])
    finally:
        await admin.close()
    with captured_logs() as logs:
        await ensure_topics(settings)
        await ensure_topics(settings)
    warnings = [line for line in logs if settings.kafka_topic_requests + " has 1 partition(s)" in line]
    assert len(warnings) == 1, logs
    assert "KAFKA_TOPIC_PARTITIONS=1" in warnings[0] and "delete the topic" in warnings[0]
    assert not any(settings.kafka_topic_responses + " has" in line for line in logs)
