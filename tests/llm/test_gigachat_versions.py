"""GigaChat API v1 and v2: GIGACHAT_API_VERSION=auto|v1|v2 against peers serving one contract only.

Older on-premises (mTLS) installations serve only /api/v1/chat/completions and answer 404 on the v2
path; `auto` must fall back to v1 once and stay there for the process. Both contracts' usage is
read, the prompt-cache tokens included (v1 `precached_prompt_tokens`, v2
`input_tokens_details.cached_tokens`).
"""

from __future__ import annotations

import pytest

from service.llm.base import BadRequest, ContentRejected
from service.llm.gigachat import GigaChatBackend
from tests.llm.conftest import ask, cloud_settings, mtls_settings, started
from tests.peers.certs import CertBundle
from tests.peers.gigachat_server import GigaChatPeer

V1_PATH, V2_PATH = "/api/v1/chat/completions", "/api/v2/chat/completions"


def fallback_lines(logs: list[str]) -> list[str]:
    return [line for line in logs if "using GigaChat API v1" in line]


async def test_auto_falls_back_to_v1_over_mtls_once_and_remembers(
    gigachat_mtls: GigaChatPeer, certs: CertBundle, captured_logs: list[str]
) -> None:
    gigachat_mtls.serves = "v1"
    gigachat_mtls.cached_prompt_tokens = 3
    async with started(GigaChatBackend(mtls_settings(gigachat_mtls, certs), "mtls")) as backend:
        first = await backend.chat(ask("first"))
        second = await backend.chat(ask("second"))

    assert (first.text, second.text) == ("echo: first", "echo: second")
    # One probe of v2 for the whole process, then v1 only.
    assert len(gigachat_mtls.calls_to(V2_PATH)) == 1
    sent = [call.body for call in gigachat_mtls.calls_to(V1_PATH)]
    assert len(sent) == 2
    assert sent[0]["messages"] == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "first"},
    ]
    assert sent[0]["model"] == "GigaChat" and sent[0]["max_tokens"] == 2048 and sent[0]["temperature"] == 0.2
    assert not first.usage.estimated
    assert (first.usage.prompt_tokens, first.usage.completion_tokens, first.usage.cached_tokens) == (
        len("You are a test.first") // 4 + 1,
        len("echo: first") // 4 + 1,
        3,
    )
    assert first.model.startswith("GigaChat:1.")
    (line,) = fallback_lines(captured_logs)
    assert line.startswith("WARNING") and gigachat_mtls.base_url in line


async def test_auto_against_a_v1_only_cloud_server_keeps_its_oauth_token(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    gigachat_cloud.serves = "v1"
    async with started(GigaChatBackend(cloud_settings(gigachat_cloud, certs), "cloud")) as backend:
        answer = await backend.chat(ask("hello v1"))

    assert answer.text == "echo: hello v1"
    assert len(gigachat_cloud.calls_to("/oauth")) == 1
    (v1_call,) = gigachat_cloud.calls_to(V1_PATH)
    assert v1_call.headers["authorization"].startswith("Bearer ")


async def test_auto_against_a_v2_only_server_never_calls_v1(
    gigachat_mtls: GigaChatPeer, certs: CertBundle, captured_logs: list[str]
) -> None:
    gigachat_mtls.serves = "v2"
    gigachat_mtls.cached_prompt_tokens = 5
    async with started(GigaChatBackend(mtls_settings(gigachat_mtls, certs), "mtls")) as backend:
        first = await backend.chat(ask("first"))
        await backend.chat(ask("second"))

    assert first.text == "echo: first" and first.model.startswith("GigaChat:2.")
    assert first.usage.cached_tokens == 5 and not first.usage.estimated
    assert len(gigachat_mtls.calls_to(V2_PATH)) == 2
    assert gigachat_mtls.calls_to(V1_PATH) == []
    assert fallback_lines(captured_logs) == []


@pytest.mark.parametrize(
    ("version", "serves", "missing_path"),
    [("v2", "v1", V2_PATH), ("v1", "v2", V1_PATH)],
)
async def test_a_pinned_version_never_probes_the_other(
    gigachat_mtls: GigaChatPeer, certs: CertBundle, version: str, serves: str, missing_path: str
) -> None:
    gigachat_mtls.serves = serves  # type: ignore[assignment]
    settings = mtls_settings(gigachat_mtls, certs, gigachat_api_version=version)
    async with started(GigaChatBackend(settings, "mtls")) as backend:
        with pytest.raises(BadRequest, match="404"):
            await backend.chat(ask())

    assert [call.path for call in gigachat_mtls.calls_to("/chat/completions")] == [missing_path]


async def test_pinned_v1_reads_usage_and_cached_tokens(
    gigachat_cloud: GigaChatPeer, certs: CertBundle
) -> None:
    gigachat_cloud.cached_prompt_tokens = 2
    settings = cloud_settings(gigachat_cloud, certs, gigachat_api_version="v1")
    async with started(GigaChatBackend(settings, "cloud")) as backend:
        answer = await backend.chat(ask("pinned"))

    assert answer.text == "echo: pinned" and answer.usage.cached_tokens == 2
    assert gigachat_cloud.calls_to(V2_PATH) == []


async def test_a_moderated_v1_answer_is_a_content_rejection_with_its_usage(
    gigachat_mtls: GigaChatPeer, certs: CertBundle
) -> None:
    gigachat_mtls.serves = "v1"
    gigachat_mtls.finish_reason = "blacklist"
    async with started(GigaChatBackend(mtls_settings(gigachat_mtls, certs), "mtls")) as backend:
        with pytest.raises(ContentRejected) as caught:
            await backend.chat(ask())

    assert caught.value.response is not None and caught.value.response.usage.total_tokens > 0


async def test_a_404_on_both_paths_is_reported_and_not_remembered(
    gigachat_mtls: GigaChatPeer, certs: CertBundle, captured_logs: list[str]
) -> None:
    """A 404 that v1 repeats is about something else (a model, say): v2's error, no switch."""
    gigachat_mtls.serves = "neither"
    async with started(GigaChatBackend(mtls_settings(gigachat_mtls, certs), "mtls")) as backend:
        with pytest.raises(BadRequest, match="404"):
            await backend.chat(ask())
        gigachat_mtls.serves = "both"
        answer = await backend.chat(ask("after"))

    assert answer.text == "echo: after"
    assert [call.path for call in gigachat_mtls.calls_to("/chat/completions")] == [V2_PATH, V1_PATH, V2_PATH]
    assert fallback_lines(captured_logs) == []
