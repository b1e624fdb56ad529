"""A local OpenAI-compatible server (plain HTTP, like vLLM/Ollama/LiteLLM on a private network)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.certs import CertBundle
from tests.peers.common import PeerState, TLSConfig, error_response, read_json, serve


@dataclass
class OpenAIPeer(PeerState):
    api_key: str = "sk-test-peer-4f1c9a0b7e"
    include_usage: bool = True
    reply_text: str | None = None  # None: echo the user message
    finish_reason: str = "stop"
    base_url: str = ""  # http://127.0.0.1:PORT/v1

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.include_usage = True
            self.reply_text = None
            self.finish_reason = "stop"

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def chat(self, request: Request) -> Response:
        body = await read_json(request)
        self.record(request, body)
        if not self._authorized(request):
            # Like the real API, the message names the key it got (unmasked here, to test redaction).
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return error_response(401, "invalid_api_key", f"Incorrect API key provided: {key}")
        if fault := self.take_fault():
            return fault
        await self.maybe_delay()
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        text = self.reply_text if self.reply_text is not None else f"echo: {user}"
        answer: dict[str, object] = {
            "id": "chatcmpl-peer",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": self.finish_reason,
                }
            ],
        }
        if self.include_usage:
            answer["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return JSONResponse(answer)

    async def models(self, request: Request) -> Response:
        self.record(request, None)
        if not self._authorized(request):
            return error_response(401, "invalid_api_key", "Incorrect API key provided")
        data = [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "peer"}]
        return JSONResponse({"object": "list", "data": data})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )


@contextmanager
def openai_peer(certs: CertBundle | None = None) -> Iterator[OpenAIPeer]:
    """Plain HTTP, or HTTPS with the test CA's server certificate when `certs` is given."""
    peer = OpenAIPeer()
    tls = TLSConfig(certs.server_cert, certs.server_key) if certs is not None else None
    with serve(peer.app(), tls) as origin:
        peer.base_url = f"{origin}/v1"
        yield peer
