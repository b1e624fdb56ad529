"""`GET /metrics` parses as the Prometheus text format and moves when requests finish."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support import SEED_EXAMPLE, make_settings, running_service

ALLOWED_LABELS = {
    "kind",
    "lane",
    "category",
    "status",
    "backend",
    "model",
    "type",
    "topic",
    "outcome",
    "reason",
    "role",  # api | worker (the broker monitor)
    "le",
}


async def scrape(client: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


async def test_metrics_move_when_requests_finish(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, metrics_public=True)
    async with running_service(settings) as svc:
        before = await scrape(svc.client)
        ids = [(await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).json()["id"] for _ in range(2)]
        for request_id in ids:
            await svc.wait_final(request_id)
        after = await scrape(svc.client)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("gigaoffice_requests_submitted_total", kind="spreadsheet", lane="interactive") == 2
    finished = {"kind": "spreadsheet", "status": "completed", "category": "spreadsheet-analysis"}
    assert moved("gigaoffice_requests_finished_total", **finished) == 2
    assert moved("gigaoffice_request_duration_seconds_count", kind="spreadsheet", status="completed") == 2
    assert moved("gigaoffice_llm_call_seconds_count", backend="dryrun") == 2
    assert moved("gigaoffice_llm_tokens_total", backend="dryrun", type="prompt") > 0
    assert total(after, "gigaoffice_worker_in_flight") == 0
    ours = {name for sample, labels in after if sample.startswith("gigaoffice_") for name, _ in labels}
    assert ours <= ALLOWED_LABELS


def test_multi_process_mode_sums_every_process(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set (API_WORKERS > 1), any process reports every process's figures."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = "from service import monitoring; monitoring.request_submitted('spreadsheet', 'interactive', None)"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True)
    report = "from service.monitoring import exposition; print(exposition()[0].decode())"
    text = subprocess.run([sys.executable, "-c", report], env=env, check=True, capture_output=True).stdout
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }
    assert total(samples, "gigaoffice_requests_submitted_total", kind="spreadsheet") == 2


async def test_rate_limit_refusals_are_counted_by_reason(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(
        postgres_url, kafka_bootstrap, anonymous_requests_per_minute=1, metrics_public=True
    )
    async with running_service(settings, with_worker=False) as svc:
        before = await scrape(svc.client)
        statuses = [(await svc.submit({"kind": "spreadsheet", **SEED_EXAMPLE})).status_code for _ in range(2)]
        after = await scrape(svc.client)
    assert statuses == [202, 429]
    refused = total(after, "gigaoffice_refusals_total") - total(before, "gigaoffice_refusals_total")
    assert refused == 1


def test_worker_metrics_listen_on_loopback_by_default() -> None:
    """The worker's metrics port has no authentication: it binds to loopback unless told otherwise."""
    import urllib.request

    from service.config import Settings
    from service.monitoring import serve_worker_metrics

    settings = Settings(_env_file=None, worker_metrics_port=0)  # type: ignore[call-arg]
    assert settings.worker_metrics_host == "127.0.0.1"
    server, thread = serve_worker_metrics(0, settings.worker_metrics_host)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert b"gigaoffice_" in answer.read()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
