"""The OpenAI-compatible surface for editor plugins: `GET /v1/models` and `POST /v1/chat/completions`
(service/usecases/chat.py). Errors here are in OpenAI's shape (service/api/errors.py); CORS for the
editors' origins comes from CORS_ALLOW_ORIGINS."""

from __future__ import annotations

import time
from typing import Annotated, cast

import orjson
from fastapi import APIRouter, Body, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from service.api.deps import AdmissionDep, CallerDep
from service.runtime import Runtime
from service.schemas.fields import SafeJsonObject
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


@router.get("/models", response_model=OpenAIModelList, summary="Models the configured backends offer")
async def list_models(request: Request, caller: CallerDep) -> OpenAIModelList:
    models = cast(Runtime, request.app.state.runtime).models
    created = int(time.time())
    return OpenAIModelList(
        data=[OpenAIModel(id=name, created=created, owned_by="gigaoffice") for name in await models.names()]
    )


@router.post(
    "/chat/completions",
    summary="A chat completion through the queue (OpenAI-compatible; `stream: true` for chunks)",
    responses={202: {"description": "Not finished within CHAT_WAIT_SECONDS: follow `links.status`"}},
)
async def chat_completions(
    admitted: AdmissionDep,
    body: Annotated[
        SafeJsonObject,
        Body(examples=[{"model": "GigaChat", "messages": [{"role": "user", "content": "Hi"}]}]),
    ],
    cache_control: Annotated[str | None, Header(description="`no-cache`: bypass the answer cache")] = None,
) -> Response:
    payload, stream = service.parse_chat_body(body)
    if "no-cache" in (cache_control or "").lower():
        payload = payload.model_copy(update={"cache": False})  # bypass the answer cache
    outcome = await service.complete(admitted.rt, payload, admitted.owner_id, admitted.caller.limits)
    status_link = f"/api/v1/requests/{outcome.request_id}"
    response: Response
    if outcome.completion is None:
        pending = {
            "id": str(outcome.request_id),
            "object": "request",
            "status": "pending",
            "links": {"status": status_link, "result": f"{status_link}/result"},
        }
        response = Response(orjson.dumps(pending), 202, media_type="application/json")
    elif stream:
        response = StreamingResponse(
            service.completion_chunks(outcome.completion),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    else:
        response = Response(orjson.dumps(outcome.completion), media_type="application/json")
    response.headers["Location"] = status_link
    response.headers.update(admitted.rate_limit_headers)
    return response
