"""Uploaded files (purpose `batch`): stored in parts while they stream in, never held whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.db import batches_repo as repo
from service.db.batch_models import StoredFile
from service.db.models import utcnow
from service.errors import AppError, NotFound, ValidationFailed
from service.usecases.batches import new_file_id

PART_BYTES = 1024 * 1024
PURPOSES = ("batch",)


class PayloadTooLarge(AppError):
    status_code = 413
    code = "file_too_large"


class Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


async def store_upload(
    session: AsyncSession,
    settings: Settings,
    source: Readable,
    *,
    filename: str,
    purpose: str,
    owner_id: str | None,
    expires_after_seconds: int | None = None,
) -> StoredFile:
    """Copies the upload into parts inside the caller's transaction; too large → 413 (the caller's
    rollback leaves nothing behind)."""
    if purpose not in PURPOSES:
        raise ValidationFailed(
            f"purpose must be one of {list(PURPOSES)} here, got {purpose!r}.",
            details=[{"loc": "purpose", "msg": "only batch input files are accepted"}],
        )
    file_id = new_file_id()
    now = utcnow()
    expires_at = None if expires_after_seconds is None else now + timedelta(seconds=expires_after_seconds)
    await repo.insert_file(
        session,
        {
            "id": file_id,
            "owner_id": owner_id,
            "purpose": purpose,
            "filename": filename[:256] or "upload.jsonl",
            "bytes": 0,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
    await session.flush()
    size, seq = 0, 0
    while chunk := await source.read(PART_BYTES):
        size += len(chunk)
        if size > settings.batch_max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than {settings.batch_max_bytes} bytes, the limit of a batch input."
            )
        await repo.insert_part(session, file_id, seq, chunk)
        seq += 1
    if size == 0:
        raise ValidationFailed("The file is empty.", details=[{"loc": "file", "msg": "empty"}])
    stored = await repo.get_file(session, file_id)
    assert stored is not None
    stored.bytes = size
    return stored


async def get_file(session: AsyncSession, file_id: str, owner_id: str | None) -> StoredFile:
    stored = await repo.get_file(session, file_id)
    if stored is None or stored.owner_id != owner_id:
        raise NotFound(f"No file with id {file_id}.")
    return stored


def input_parts(session: AsyncSession, stored: StoredFile) -> AsyncIterator[bytes]:
    return repo.file_parts(session, stored.id)
