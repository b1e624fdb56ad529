"""Dependencies shared by routes. The clients themselves live on app.state, made in the lifespan.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a thread pool, which costs
more than everything else a status read does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db.request_store import RequestStore
from service.messaging.hub import StatusHub
from service.messaging.kafka import RequestPublisher


@dataclass(frozen=True, slots=True)
class Clients:
    """The long-lived clients of an API process, opened in the lifespan. One dependency for all of
    them keeps the per-request cost of dependency resolution on the hot paths small."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    store: RequestStore
    publisher: RequestPublisher
    hub: StatusHub  # wakes waiters on status events (long-poll, Prefer: wait, SSE, chat)


async def get_clients(request: Request) -> Clients:
    return request.app.state.clients


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.clients.settings


async def get_store(request: Request) -> RequestStore:
    return request.app.state.clients.store


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # The request owns this session and is the only one that commits it.
    async with request.app.state.clients.sessions() as session:
        yield session
        if session.in_transaction():
            await session.commit()


async def get_owner_id(request: Request) -> str | None:
    """The caller's identity. None until API keys exist: then every request is visible."""
    return getattr(request.state, "owner_id", None)


ClientsDep = Annotated[Clients, Depends(get_clients)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the commit happens before the response is sent, so a 200 means committed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
StoreDep = Annotated[RequestStore, Depends(get_store)]
OwnerDep = Annotated[str | None, Depends(get_owner_id)]
