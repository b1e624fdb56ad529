"""A local GigaChat-compatible HTTPS server: OAuth token endpoint, chat completions, models.

Cloud mode: clients exchange Basic credentials for a short-lived bearer token at /api/v2/oauth and
send it to /api/v1/*. mTLS mode: the TLS layer demands a client certificate from our test CA and
the API needs no token, as with GigaChat's certificate access.

`serves` picks the chat contracts: both (today's cloud), "v1" only (older on-premises installations:
404 on /api/v2/chat/completions), "v2" only (404 on /api/v1/chat/completions) or "neither".
"""

from __future__ import annotations

import os
import secrets
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.certs import CertBundle
from tests.peers.common import PeerState, TLSConfig, error_response, read_json, serve

MODELS = ["GigaChat", "GigaChat-Pro", "GigaChat-Max"]


@dataclass
class GigaChatPeer(PeerState):
    credentials: str = "dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQtOTk="  # base64 "test-client:test-secret-99"
    scope: str = "GIGACHAT_API_PERS"
    require_token: bool = True  # False in mTLS mode: the client certificate authenticates
    token_lifetime_seconds: float = 1800.0
    reply_text: str | None = None  # None: echo the user message
    finish_reason: str = "stop"
    serves: Literal["both", "v1", "v2", "neither"] = "both"
    cached_prompt_tokens: int = 0  # reported as served from the prompt cache (v1 and v2 name it apart)
    # Prompt caching as GigaChat does it: per X-Session-ID, the prefix a request shares with the
    # session's previous prompt is served from the cache (when cached_prompt_tokens is 0).
    session_prompts: dict[str, str] = field(default_factory=dict)
    # What the peer billed: answered chat calls and their prompt (of which cached) / completion tokens.
    billed: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # issued token -> expiry (unix seconds)
    base_url: str = ""  # https://127.0.0.1:PORT/api/v1
    auth_url: str = ""  # https://127.0.0.1:PORT/api/v2/oauth

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.tokens.clear()
            self.token_lifetime_seconds = 1800.0
            self.reply_text = None
            self.finish_reason = "stop"
            self.serves = "both"
            self.cached_prompt_tokens = 0
            self.session_prompts.clear()
            self.billed.clear()
            self.scope = "GIGACHAT_API_PERS"

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _token_valid(self, request: Request) -> bool:
        if not self.require_token:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            expiry = self.tokens.get(token)
        return scheme == "Bearer" and expiry is not None and expiry > time.time()

    async def oauth(self, request: Request) -> Response:
        # Parsed by hand: Starlette's form parser would need python-multipart just for this.
        form = dict(parse_qsl((await request.body()).decode()))
        self.record(request, form)
        received = request.headers.get("authorization", "")
        if received != f"Basic {self.credentials}":
            # Echoes what it got, as careless servers do: the client must redact its own secrets.
            return error_response(401, "unauthorized", f"Invalid credentials: {received}")
        if form.get("scope") != self.scope or not request.headers.get("rquid"):
            return error_response(400, "bad_request", "scope and RqUID are required")
        token = secrets.token_urlsafe(24)
        expires_at = time.time() + self.token_lifetime_seconds
        with self.lock:
            self.tokens[token] = expires_at
        return JSONResponse({"access_token": token, "expires_at": int(expires_at * 1000)})

    async def _answer(self, request: Request, version: str) -> tuple[dict[str, Any], str] | Response:
        """Common part of both chat contracts: the request body and the reply text, or an error."""
        body = await read_json(request)
        self.record(request, body)
        if self.serves not in ("both", version):
            # As a server without the route answers: before authentication, with no JSON error body.
            return Response("404 page not found", status_code=404, media_type="text/plain")
        if not self._token_valid(request):
            return error_response(401, "unauthorized", "Token has expired")
        if fault := self.take_fault():
            return fault
        await self.maybe_delay()
        user = next((_text(m) for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        return body, self.reply_text if self.reply_text is not None else f"echo: {user}"

    def _usage(self, request: Request, body: dict[str, Any], text: str) -> tuple[int, int, int]:
        """(prompt, completion, cached prompt) tokens of one answered call, counted as billed."""
        prompt = "".join(_text(m) for m in body.get("messages", []))
        prompt_tokens, completion_tokens = len(prompt) // 4 + 1, len(text) // 4 + 1
        cached = self.cached_prompt_tokens
        session = request.headers.get("x-session-id")
        with self.lock:
            if session and not cached:
                previous = self.session_prompts.get(session, "")
                shared = len(os.path.commonprefix([previous, prompt]))  # noqa: RUF071 (characters)
                cached = min(shared // 4, prompt_tokens - 1)
            if session:
                self.session_prompts[session] = prompt
            for name, value in (
                ("calls", 1), ("prompt_tokens", prompt_tokens), ("cached_tokens", cached),
                ("completion_tokens", completion_tokens),
            ):  # fmt: skip
                self.billed[name] = self.billed.get(name, 0) + value
        return prompt_tokens, completion_tokens, cached

    async def chat(self, request: Request) -> Response:
        """The root contract (v1: choices[], prompt/completion tokens), the SDK's compatibility shim."""
        answered = await self._answer(request, "v1")
        if isinstance(answered, Response):
            return answered
        body, text = answered
        prompt_tokens, completion_tokens, cached = self._usage(request, body, text)
        return JSONResponse(
            {
                "choices": [
                    {
                        "message": {"role": "assistant", "content": text},
                        "index": 0,
                        "finish_reason": self.finish_reason,
                    }
                ],
                "created": int(time.time()),
                "model": f"{body.get('model', 'GigaChat')}:1.0.26.20",
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                    "precached_prompt_tokens": cached,
                },
                "object": "chat.completion",
            }
        )

    async def chat_v2(self, request: Request) -> Response:
        """The primary contract (v2: messages[] of content parts, model_options, input/output tokens)."""
        answered = await self._answer(request, "v2")
        if isinstance(answered, Response):
            return answered
        body, text = answered
        input_tokens, output_tokens, cached = self._usage(request, body, text)
        return JSONResponse(
            {
                "model": f"{body.get('model', 'GigaChat')}:2.0.28.2",
                "created_at": int(time.time()),
                "message_id": secrets.token_hex(8),
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"text": text}],
                        "finish_reason": self.finish_reason,
                    }
                ],
                "finish_reason": self.finish_reason,
                "usage": {
                    "input_tokens": input_tokens,
                    "input_tokens_details": {"cached_tokens": cached},
                    "output_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                },
            }
        )

    async def models(self, request: Request) -> Response:
        self.record(request, None)
        if not self._token_valid(request):
            return error_response(401, "unauthorized", "Token has expired")
        data = [{"id": name, "object": "model", "owned_by": "salutedevices"} for name in MODELS]
        return JSONResponse({"data": data, "object": "list"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v2/oauth", self.oauth, methods=["POST"]),
                Route("/api/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/api/v2/chat/completions", self.chat_v2, methods=["POST"]),
                Route("/api/v1/models", self.models, methods=["GET"]),
            ]
        )


def _text(message: dict[str, Any]) -> str:
    """A message's text in either contract: a string (v1) or a list of content parts (v2)."""
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return str(content)


@contextmanager
def gigachat_peer(
    certs: CertBundle,
    *,
    mtls: bool = False,
    linger_on_refusal: bool = True,
    nginx_style: bool = False,
    asyncio_tls: bool = False,
    max_version: ssl.TLSVersion | None = None,
) -> Iterator[GigaChatPeer]:
    """Start a GigaChat peer over TLS (mutual TLS when `mtls`); yields it with base_url/auth_url set.

    `nginx_style`: a foreign client certificate passes the handshake and gets an HTML 400 page.
    `asyncio_tls`: uvicorn terminates TLS and drops a refused handshake without an alert."""
    peer = GigaChatPeer(require_token=not mtls)
    client_ca = certs.ca_file if mtls else None
    if mtls and nginx_style:
        client_ca = certs.ca_file.with_name("ca-and-foreign-ca.pem")
        client_ca.write_bytes(certs.ca_file.read_bytes() + certs.foreign_ca_file.read_bytes())
    tls = TLSConfig(
        certs.server_cert,
        certs.server_key,
        client_ca,
        linger_on_refusal,
        certificate_page_unless_issuer="GigaOffice Test CA" if nginx_style else None,
        asyncio_tls=asyncio_tls,
        max_version=max_version,
    )
    with serve(peer.app(), tls) as origin:
        peer.base_url = f"{origin}/api/v1"
        peer.auth_url = f"{origin}/api/v2/oauth"
        yield peer
