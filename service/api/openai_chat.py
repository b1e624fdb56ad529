"""The OpenAI-compatible surface for editor plugins: `GET /v1/models` and `POST /v1/chat/completions`
(service/usecases/chat.py). Errors here are in OpenAI's shape (service/api/errors.py); CORS for the
editors' origins comes from CORS_ALLOW_ORIGINS."""

from __future__ import annotations

import time
from typing import Annotated, cast

import orjson
from fastapi import APIRouter, Body, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from service.api.deps import AdmissionDep, get_caller
from service.callers.connections import released_after
from service.runtime import Runtime
from service.schemas.batches import OpenAIErrorEnvelope
from service.schemas.fields import SafeJsonObject, Text
from service.usecases import chat as service

router = APIRouter(prefix="/v1", tags=["openai-compatible chat"])


class OpenAIModel(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class OpenAIModelList(BaseModel):
    object: str = "list"
    data: list[OpenAIModel]


async def models_reader(request: Request) -> None:
    """GET /v1/models: any caller with a key, or anyone when MODELS_PUBLIC is on (ONLYOFFICE's
    plugin lists models without its key when a provider is typed in by hand)."""
    if not cast(Runtime, request.app.state.runtime).settings.models_public:
        await get_caller(request)


@router.get(
    "/models",
    response_model=OpenAIModelList,
    summary="Models the configured backends offer",
    dependencies=[Depends(models_reader)],
)
async def list_models(request: Request) -> OpenAIModelList:
    models = cast(Runtime, request.app.state.runtime).models
    created = int(time.time())
    return OpenAIModelList(
        data=[OpenAIModel(id=name, created=created, owned_by="gigaoffice") for name in await models.names()]
    )


_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post(
    "/chat/completions",
    summary="A chat completion through the queue (OpenAI-compatible; `stream: true` for chunks)",
    responses={
        200: {
            "description": "The `chat.completion`; with `stream: true`, `chat.completion.chunk` events "
            "(`: keep-alive` comments while the request waits) ending in `data: [DONE]`",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
        504: {
            "model": OpenAIErrorEnvelope,
            "description": "No answer within CHAT_WAIT_SECONDS (`timeout`); the request goes on and "
            "its result stays readable at /api/v1/requests/{id}/result",
        },
    },
)
async def chat_completions(
    admitted: AdmissionDep,
    body: Annotated[
        SafeJsonObject,
        Body(examples=[{"model": "GigaChat", "messages": [{"role": "user", "content": "Hi"}]}]),
    ],
    cache_control: Annotated[
        Annotated[str, Text(max_length=200)] | None, Header(description="`no-cache`: bypass the answer cache")
    ] = None,
) -> Response:
    payload, stream = service.parse_chat_body(body)
    if "no-cache" in (cache_control or "").lower():
        payload = payload.model_copy(update={"cache": False})  # bypass the answer cache
    rt = admitted.rt
    wait = rt.settings.chat_wait_seconds
    # A stream first waits like a plain call for one keep-alive interval: an answer or a failure by
    # then gets its proper status; after it, the status is 200 and the stream carries what follows.
    first_wait = min(wait, rt.settings.sse_keepalive_seconds) if stream else wait
    # The call holds a connection open all along: a slot of the owner's cap, taken before submitting.
    slot = rt.connections.acquire("sse" if stream else "long_poll", admitted.owner_id)
    try:
        outcome = await service.complete(
            rt, payload, admitted.owner_id, wait=first_wait, limits=admitted.caller.limits
        )
    except BaseException:
        slot.release()
        raise
    response: Response
    if outcome.completion is None and stream:
        chunks = service.pending_chunks(
            rt, outcome.request_id, admitted.owner_id, max_seconds=wait - first_wait
        )
        response = StreamingResponse(
            released_after(slot, chunks),
            media_type="text/event-stream",
            headers=_STREAM_HEADERS,
            background=BackgroundTask(slot.release),
        )
    else:
        slot.release()
        if outcome.completion is None:
            raise service.ChatTimedOut(outcome.request_id, wait)
        if stream:
            chunks = service.completion_chunks(outcome.completion)
            response = StreamingResponse(chunks, media_type="text/event-stream", headers=_STREAM_HEADERS)
        else:
            response = Response(orjson.dumps(outcome.completion), media_type="application/json")
    response.headers["Location"] = f"/api/v1/requests/{outcome.request_id}"
    response.headers.update(admitted.rate_limit_headers)
    return response
