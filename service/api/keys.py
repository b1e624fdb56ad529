"""/api/v1/keys: API key administration (admin keys only). The first admin key of a deployment is
created with `python -m service keys create --role admin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from service.api.deps import AdminDep, SessionDep
from service.db.key_models import ApiKey
from service.db.unit_of_work import after_commit
from service.runtime import Runtime
from service.schemas.fields import ColumnText
from service.schemas.keys import KeyCreate, KeyCreated, KeyOut, KeyUpdate
from service.usecases import audit
from service.usecases import keys as service

KeyId = Annotated[str, ColumnText(ApiKey.id, min_length=1)]

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut.model_validate(row)


@router.post(
    "", status_code=201, response_model=KeyCreated, summary="Create a key (the secret is shown once)"
)
async def create_key(payload: KeyCreate, session: SessionDep, admin: AdminDep) -> KeyCreated:
    created = await service.create_key(session, **payload.model_dump(), actor=admin.key_id or audit.CLI)
    return KeyCreated(**key_out(created.row).model_dump(), secret=created.secret)


@router.get("", response_model=list[KeyOut], summary="List keys")
async def list_keys(session: SessionDep, admin: AdminDep, include_revoked: bool = False) -> list[KeyOut]:
    return [key_out(row) for row in await service.list_keys(session, include_revoked=include_revoked)]


@router.get("/{key_id}", response_model=KeyOut, summary="One key")
async def get_key(key_id: KeyId, session: SessionDep, admin: AdminDep) -> KeyOut:
    return key_out(await service.get_key(session, key_id))


@router.patch("/{key_id}", response_model=KeyOut, summary="Change a key's name, role or limits")
async def update_key(
    key_id: KeyId, payload: KeyUpdate, request: Request, session: SessionDep, admin: AdminDep
) -> KeyOut:
    values = payload.model_dump(exclude_unset=True)
    for required in ("name", "role"):
        if values.get(required, "") is None:
            values.pop(required)
    row = await service.update_key(session, key_id, values, actor=admin.key_id or audit.CLI)
    _forget_after_commit(request, session, key_id)
    return key_out(row)


@router.delete("/{key_id}", response_model=KeyOut, summary="Revoke a key (kept for the record)")
async def revoke_key(key_id: KeyId, request: Request, session: SessionDep, admin: AdminDep) -> KeyOut:
    row = await service.revoke_key(session, key_id, actor=admin.key_id or audit.CLI)
    _forget_after_commit(request, session, key_id)
    return key_out(row)


def _forget_after_commit(request: Request, session: AsyncSession, key_id: str) -> None:
    """Once the change is committed this process stops accepting the key's old state at once;
    others within API_KEY_CACHE_SECONDS."""
    rt: Runtime = request.app.state.runtime

    async def forget() -> None:
        rt.authenticator.forget(key_id)

    after_commit(session, forget)
