"""Units of work: who commits, and what runs after the commit.

Only a unit of work commits a transaction: the request-scoped session of a route
(service/api/deps.py), the worker's per-message handler, the sweeper, the batch feeder, the webhook
dispatcher's per-delivery step, and a CLI command. Use-cases and repositories take a session and
only flush.

A side effect that must not happen unless the transaction is durable (publishing a status event,
waking a waiter, forgetting a cached key) is registered on the session with `after_commit(session,
action)`. The owner calls `commit(session)`, which commits and then runs the registered actions in
the order they were registered. If the commit fails, or the unit of work ends in an error, the
actions are dropped with the session. An action that fails is logged and does not undo the commit
(nor stop the actions after it) unless it raises an `AppError`, which reaches the caller — a submit
whose publish the broker refused answers 503, for example.

`transaction(sessions)` is the same for an owner that opens its own session (a background job, a
CLI command): `async with transaction(rt.sessions) as session: ...`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.errors import AppError

AfterCommit = Callable[[], Awaitable[object]]

_KEY = "after_commit"


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run `action` once the unit of work owning `session` has committed."""
    session.info.setdefault(_KEY, []).append(action)


async def commit(session: AsyncSession) -> None:
    """Commit `session` (if anything was begun), then run its after-commit actions."""
    if session.in_transaction():
        await session.commit()
    actions: list[AfterCommit] = session.info.pop(_KEY, [])
    refused: AppError | None = None
    for action in actions:
        try:
            await action()
        except AppError as exc:
            refused = refused or exc
        except Exception:
            logger.exception("an after-commit action failed (the transaction stays committed)")
    if refused is not None:
        raise refused


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work on a session of its own: committed when the block ends without an error."""
    async with sessions() as session:
        yield session
        await commit(session)
