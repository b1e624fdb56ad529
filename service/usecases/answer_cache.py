"""The answer cache with single flight (issue 17): identical LLM calls are made once.

Two requests are identical when they would send the same backend and model the same rendered
messages with the same sampling parameters (and are of the same kind, which reads the answer).
The first one's validated answer is reused by the others until ANSWER_CACHE_TTL_SECONDS pass,
within the owner (ANSWER_CACHE_SCOPE=owner, the default) or for everyone (shared).

Identical requests in flight at once make one call across every worker: the first takes the lead
through the database (service/db/answer_cache_repo.py; a row per key, so it works on SQLite and
PostgreSQL alike) and the others poll for its answer. A leader that fails gives its lead up at once;
a leader whose worker dies loses it when its lease runs out; either way one follower takes over.

Each step is a short unit of work of its own: no transaction stays open while the model thinks.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.config import Settings
from service.db import answer_cache_repo as repo
from service.db.answer_cache_repo import CachedAnswer
from service.db.requests_repo import ClaimedRequest, LLMAccounting
from service.db.unit_of_work import transaction
from service.llm.base import ChatRequest
from service.monitoring import ANSWER_CACHE_LOOKUPS


def bypassed(row: ClaimedRequest) -> bool:
    """`"cache": false` in the body (or Cache-Control: no-cache on /v1/) is stored in the options."""
    return isinstance(row.options, dict) and row.options.get("cache") is False


def cache_key(settings: Settings, backend: str, row: ClaimedRequest, chat: ChatRequest) -> str:
    scope = "*" if settings.answer_cache_scope == "shared" else f"owner:{row.owner_id or '-'}"
    identity = {
        "scope": scope,
        "kind": row.kind,
        "backend": backend,
        "model": chat.model or "",
        "messages": [[message.role, message.content] for message in chat.conversation()],
        "temperature": chat.temperature,
        "max_tokens": chat.max_tokens,
    }
    return hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)).hexdigest()


class AnswerCache:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._settings = settings
        self._sessions = sessions

    async def lead_or_answer(self, key: str, request_id: uuid.UUID) -> CachedAnswer | None:
        """The cached answer, or None once this request holds the lead (it makes the call)."""
        waited = False
        while True:
            async with transaction(self._sessions) as session:
                got = await repo.acquire(session, key, request_id, self._settings.answer_cache_lease_seconds)
            if isinstance(got, CachedAnswer):
                ANSWER_CACHE_LOOKUPS.labels("hit").inc()
                return got
            if isinstance(got, repo.Lead):
                ANSWER_CACHE_LOOKUPS.labels("takeover" if waited else "miss").inc()
                return None
            waited = True
            await asyncio.sleep(self._settings.answer_cache_poll_seconds)

    async def store(self, key: str, request_id: uuid.UUID, result: object, accounting: LLMAccounting,
                    category: str | None, template_version: int | None) -> None:  # fmt: skip
        async with transaction(self._sessions) as session:
            await repo.store(
                session, key, request_id,
                ttl_seconds=self._settings.answer_cache_ttl_seconds, result=result, category=category,
                template_version=template_version, prompt_tokens=accounting.prompt_tokens,
                completion_tokens=accounting.completion_tokens, total_tokens=accounting.total_tokens,
                backend=accounting.backend, model=accounting.model,
            )  # fmt: skip

    async def give_up(self, key: str, request_id: uuid.UUID) -> None:
        async with transaction(self._sessions) as session:
            await repo.give_up(session, key, request_id)
