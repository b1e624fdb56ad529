"""The OpenAI-compatible Files and Batches API (/v1/files, /v1/batches), as OpenAI documents it,
so that the official SDK works unchanged with base_url=<service>/v1. Errors here are in OpenAI's
shape (service/api/errors.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from service.api.deps import CallerDep, OwnerDep, RuntimeDep, SessionDep
from service.db import batches_repo as repo
from service.db import unit_of_work
from service.db.batch_models import BatchStatus
from service.errors import NotFound
from service.schemas.batches import (
    BatchIdText,
    CreateBatchBody,
    CursorText,
    FileDeleted,
    FileIdText,
    OpenAIBatch,
    OpenAIBatchList,
    OpenAIFile,
    OpenAIFileList,
    PurposeText,
    parse_batch_id,
)
from service.schemas.events import StatusEvent
from service.usecases import batches as service
from service.usecases import files as file_service
from service.usecases.batch_lines import check_jsonl
from service.usecases.batch_output import openai_file_lines

router = APIRouter(prefix="/v1", tags=["openai-compatible batches"])


def _batch_uuid(value: str) -> uuid.UUID:
    parsed = parse_batch_id(value)
    if parsed is None:
        raise NotFound(f"No batch with id {value}.", code="batch_not_found")
    return parsed


# --- files -------------------------------------------------------------------------------------------


@router.post("/files", response_model=OpenAIFile, summary="Upload a JSONL batch input file")
async def upload_file(
    rt: RuntimeDep,
    session: SessionDep,
    owner_id: OwnerDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[PurposeText, Form()],
    # OpenAI's `expires_after` as multipart fields: expires_after[anchor]=created_at and
    # expires_after[seconds]=3600..2592000 (one hour to 30 days).
    expires_anchor: Annotated[Literal["created_at"] | None, Form(alias="expires_after[anchor]")] = None,
    expires_seconds: Annotated[
        int | None, Form(alias="expires_after[seconds]", ge=3600, le=2_592_000)
    ] = None,
) -> OpenAIFile:
    # The multipart parser spools the upload to disk past 1 MB; it is copied into the database in
    # parts, so a 200 MB file never sits in the API's memory.
    stored = await file_service.store_upload(
        session,
        rt.settings,
        file,
        filename=file.filename or "",
        purpose=purpose,
        owner_id=owner_id,
        expires_after_seconds=expires_seconds,
    )
    return OpenAIFile.of(stored)


@router.get("/files", response_model=OpenAIFileList, summary="Your files")
async def list_files(
    session: SessionDep,
    owner_id: OwnerDep,
    purpose: PurposeText | None = None,
    limit: int = Query(20, ge=1, le=10_000),
    after: CursorText | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> OpenAIFileList:
    cursor = await file_service.get_file(session, after, owner_id) if after else None
    rows = await repo.list_files(session, owner_id, purpose, limit + 1, cursor, newest_first=order == "desc")
    data = [OpenAIFile.of(row) for row in rows[:limit]]
    return OpenAIFileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=len(rows) > limit,
    )


@router.get("/files/{file_id}", response_model=OpenAIFile, summary="A file's description")
async def get_file(file_id: FileIdText, session: SessionDep, owner_id: OwnerDep) -> OpenAIFile:
    return OpenAIFile.of(await file_service.get_file(session, file_id, owner_id))


@router.get("/files/{file_id}/content", summary="A file's content (input, or a batch's output/errors)")
async def file_content(
    file_id: FileIdText, rt: RuntimeDep, session: SessionDep, owner_id: OwnerDep
) -> StreamingResponse:
    stored = await file_service.get_file(session, file_id, owner_id)
    batch = await service.get_batch(session, stored.batch_id, owner_id) if stored.batch_id else None

    async def content() -> AsyncIterator[bytes]:
        async with rt.sessions() as streaming:
            if batch is None:
                async for part in file_service.input_parts(streaming, stored):
                    yield part
            else:
                async for line in openai_file_lines(streaming, batch, stored.note or "output"):
                    yield line

    return StreamingResponse(content(), media_type="application/jsonl")


@router.delete("/files/{file_id}", response_model=FileDeleted, summary="Delete a file")
async def delete_file(file_id: FileIdText, session: SessionDep, owner_id: OwnerDep) -> FileDeleted:
    stored = await file_service.get_file(session, file_id, owner_id)
    await repo.delete_file(session, stored.id)
    return FileDeleted(id=stored.id, deleted=True)


# --- batches -----------------------------------------------------------------------------------------


@router.post("/batches", response_model=OpenAIBatch, summary="Create a batch from an uploaded input file")
async def create_batch(
    body: CreateBatchBody, rt: RuntimeDep, session: SessionDep, owner_id: OwnerDep, caller: CallerDep
) -> OpenAIBatch:
    stored = await file_service.get_file(session, body.input_file_id, owner_id)
    checker = service.checker(rt.settings, body.endpoint, caller.limits)
    service.window_hours(body.completion_window)
    parsed = await check_jsonl(file_service.input_parts(session, stored), checker)
    batch_id = await service.store_batch(
        session,
        parsed,
        owner_id=owner_id,
        endpoint=body.endpoint,
        surface="openai",
        completion_window=body.completion_window,
        input_file_id=stored.id,
        metadata=body.metadata,
    )
    batch = await service.get_batch(session, batch_id, owner_id)
    if batch.status == BatchStatus.FAILED:
        # Failed at creation (invalid lines): the feeder never sees it, so its completion event
        # (webhook `batch.failed`, batch SSE) is sent here, once the unit of work has committed.
        unit_of_work.after_commit(session, partial(rt.publisher.publish_event, StatusEvent.of_batch(batch)))
    return OpenAIBatch.of(await service.view(session, batch))


@router.get("/batches", response_model=OpenAIBatchList, summary="Your batches, newest first")
async def list_batches(
    session: SessionDep,
    owner_id: OwnerDep,
    limit: int = Query(20, ge=1, le=100),
    after: CursorText | None = None,
) -> OpenAIBatchList:
    views, more = await service.list_batches(session, owner_id, limit, _batch_uuid(after) if after else None)
    data = [OpenAIBatch.of(view) for view in views]
    return OpenAIBatchList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=more
    )


@router.get("/batches/{batch_id}", response_model=OpenAIBatch, summary="A batch")
async def get_batch(batch_id: BatchIdText, session: SessionDep, owner_id: OwnerDep) -> OpenAIBatch:
    batch = await service.get_batch(session, _batch_uuid(batch_id), owner_id)
    return OpenAIBatch.of(await service.view(session, batch))


@router.post("/batches/{batch_id}/cancel", response_model=OpenAIBatch, summary="Cancel a batch")
async def cancel_batch(
    batch_id: BatchIdText, rt: RuntimeDep, session: SessionDep, owner_id: OwnerDep
) -> OpenAIBatch:
    return OpenAIBatch.of(await service.cancel(session, rt.publisher, _batch_uuid(batch_id), owner_id))
