"""GigaChat prompt caching (issue 17): a stable X-Session-ID per (owner, template version), the
provider's cached prompt tokens stored on the request and billed apart. The peer keeps a cache per
session id and reports it in the v1 and v2 fields."""

from __future__ import annotations

from typing import Any

import pytest

from service.llm.registry import build_backend
from tests.peers.certs import CertBundle
from tests.peers.fixtures import *  # noqa: F403 - certs and peers are used by name
from tests.peers.fixtures import cloud_values
from tests.peers.gigachat_server import GigaChatPeer
from tests.support import SEED_EXAMPLE, make_settings, running_service
from tests.test_llm_e2e import MODEL_ANSWER


def sheet(product: str) -> dict[str, Any]:
    data = [["Товар", "Январь"], [product, 100]]
    return {"kind": "spreadsheet", **SEED_EXAMPLE, "input_range": "A1:B2", "input_data": data}


@pytest.mark.parametrize("contract", ["v1", "v2"])
async def test_one_session_per_template_and_cached_tokens_are_stored(
    contract: str, gigachat_cloud: GigaChatPeer, certs: CertBundle, postgres_url: str, kafka_bootstrap: str
) -> None:
    gigachat_cloud.reply_text = MODEL_ANSWER
    gigachat_cloud.serves = contract  # type: ignore[assignment]
    settings = make_settings(postgres_url, kafka_bootstrap, **cloud_values(gigachat_cloud, certs))
    async with running_service(settings, backend=build_backend(settings)) as svc:
        usages = []
        for product in ("Товар A", "Товар B"):
            request_id = (await svc.submit(sheet(product))).json()["id"]
            assert (await svc.wait_final(request_id))["status"] == "completed"
            usages.append((await svc.client.get(f"/api/v1/requests/{request_id}/result")).json()["usage"])
    calls = [c for c in gigachat_cloud.calls_to("/chat/completions") if c.path.startswith(f"/api/{contract}")]
    sessions = {call.headers.get("x-session-id") for call in calls}
    assert len(calls) == 2 and len(sessions) == 1 and None not in sessions
    # The shared part (system prompt, examples) comes first, the request's data last: the second
    # request's prompt is mostly the cached prefix.
    assert usages[0]["cached_prompt_tokens"] == 0
    assert usages[1]["cached_prompt_tokens"] > usages[1]["prompt_tokens"] // 2


async def test_the_setting_turns_sessions_off(
    gigachat_cloud: GigaChatPeer, certs: CertBundle, postgres_url: str, kafka_bootstrap: str
) -> None:
    gigachat_cloud.reply_text = MODEL_ANSWER
    settings = make_settings(
        postgres_url, kafka_bootstrap, gigachat_session_cache=False, **cloud_values(gigachat_cloud, certs)
    )
    async with running_service(settings, backend=build_backend(settings)) as svc:
        request_id = (await svc.submit(sheet("Товар C"))).json()["id"]
        assert (await svc.wait_final(request_id))["status"] == "completed"
    calls = gigachat_cloud.calls_to("/chat/completions")
    assert calls and all("x-session-id" not in call.headers for call in calls)
