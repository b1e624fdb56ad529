"""The OpenAI-compatible surface for editor plugins: `GET /v1/models` (and, with the `chat` kind,
`POST /v1/chat/completions`). CORS for the editors' origins comes from CORS_ALLOW_ORIGINS."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel

from service.api.deps import CallerDep
from service.services.chat import ModelList

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
    models: ModelList = request.app.state.model_list
    created = int(time.time())
    return OpenAIModelList(
        data=[OpenAIModel(id=name, created=created, owned_by="gigaoffice") for name in await models.names()]
    )
