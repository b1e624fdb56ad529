"""A local webhook receiver: records every POST, verifies its Standard Webhooks signature."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.client import WebhookVerificationError, verify_webhook
from tests.peers.common import PeerState, serve


@dataclass
class Received:
    headers: dict[str, str]
    payload: dict[str, Any] | None  # None: the signature did not verify
    status: int  # what the receiver answered


@dataclass
class WebhookReceiver(PeerState):
    secret: str = ""
    gone: bool = False  # answer 410 Gone
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            payload: dict[str, Any] | None = verify_webhook(self.secret, headers, body)
        except WebhookVerificationError:
            payload = None
        fault = self.take_fault()
        status = 410 if self.gone else fault.status_code if fault is not None else 204
        with self.lock:
            self.received.append(Received(headers, payload, status))
        if fault is not None and not self.gone:
            return fault
        return Response(status_code=status)

    def answered(self, status: int) -> list[Received]:
        with self.lock:
            return [item for item in self.received if item.status == status]

    def ids(self) -> list[str]:
        with self.lock:
            return [item.headers["webhook-id"] for item in self.received]


@contextmanager
def webhook_receiver(secret: str) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=secret)
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    with serve(app) as origin:
        receiver.url = f"{origin}/hook"
        yield receiver
