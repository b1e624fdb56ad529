"""All SQL about analysis requests. Callers own the session and decide when to commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, Uuid, any_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.db.models import AnalysisRequest, RequestStatus, utcnow

_T = AnalysisRequest


@dataclass(frozen=True, slots=True)
class LLMAccounting:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False
    calls: int = 0
    latency_ms: float | None = None
    backend: str | None = None
    model: str | None = None
    # Prompt tokens the provider served from its prompt cache (part of prompt_tokens).
    cached_tokens: int = 0
    # An answer from the answer cache: the request that paid for it, and the tokens not spent again.
    cached_from: uuid.UUID | None = None
    tokens_saved: int = 0
    # What was sent and answered, call by call (the console's "prompt as sent" and "raw answer").
    transcript: Any = None

    def as_values(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "tokens_estimated": self.estimated,
            "llm_calls": self.calls,
            "llm_latency_ms": self.latency_ms,
            "llm_backend": self.backend,
            "llm_model": self.model,
            "cached_prompt_tokens": self.cached_tokens,
            "cached_from": self.cached_from,
            "tokens_saved": self.tokens_saved,
            "transcript": self.transcript,
        }


# What a submit writes; every other column starts at its server default (zero counters, NULLs).
INSERT_COLUMNS: tuple[str, ...] = (
    "id", "kind", "status", "category", "query_text", "input_range", "input_data", "title",
    "description", "options", "owner_id", "batch_id", "priority", "idempotency_key", "trace_id",
    "created_at", "updated_at", "idempotency_hash",
)  # fmt: skip


def new_request_row(values: dict[str, Any]) -> dict[str, Any]:
    """A queued request's row: what the caller gives plus the lifecycle defaults."""
    unknown = set(values) - set(INSERT_COLUMNS)
    if unknown:
        raise ValueError(f"a new request cannot set {sorted(unknown)}")
    now = utcnow()
    row: dict[str, Any] = dict.fromkeys(INSERT_COLUMNS)
    row.update(status=RequestStatus.QUEUED, priority="normal", created_at=now, updated_at=now)
    row.update(values)
    return row


async def insert_request(session: AsyncSession, values: dict[str, Any]) -> None:
    """The same row the API's hot path (request_store) writes, inside the caller's session."""
    await session.execute(insert(_T).values(new_request_row(values)))


async def get_request(session: AsyncSession, request_id: uuid.UUID) -> AnalysisRequest | None:
    return await session.get(_T, request_id)


def scoped_idempotency_key(owner_id: str | None, key: str) -> str:
    """Keys are unique per owner: the stored value carries the owner."""
    return f"{owner_id or '-'}:{key}"


async def find_by_idempotency_key(session: AsyncSession, scoped_key: str) -> AnalysisRequest | None:
    stmt = select(_T).where(_T.idempotency_key == scoped_key)
    return (await session.execute(stmt)).scalar_one_or_none()


# --- the worker's hot path ----------------------------------------------------------------------
#
# claim, complete, fail and release run once per message, so each is ONE statement built once on
# the Core table: SQLAlchemy reuses its compiled form and a call only binds values (through the ORM,
# `update(entity).values(dict)` rebuilt the statement, its cache key and the ORM bulk-update state
# every call: ~4x the CPU). A single conditional UPDATE is atomic by itself, so the worker runs these
# on a connection in autocommit mode: one round trip instead of BEGIN, UPDATE, COMMIT. The WHERE
# clause on the status is what makes each transition race-safe, exactly as before. On PostgreSQL
# the worker runs the same statements through asyncpg directly (service/db/worker_store.py).

_TABLE: Table = AnalysisRequest.__table__  # type: ignore[assignment]
_C = _TABLE.c


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    """What processing needs of a claimed row (the input), and what its status event carries."""

    id: uuid.UUID
    kind: str
    category: str | None
    query_text: str | None
    input_range: str | None
    input_data: Any
    title: str | None
    description: str | None
    options: Any
    attempts: int
    # Whose budget the work spends (the worker checks it before any LLM call); with the rest, what
    # the `processing` status event and the metrics carry.
    owner_id: str | None
    batch_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None

    @property
    def ref(self) -> ClaimRef:
        return ClaimRef(self.id, self.attempts)

    def state(self) -> StateChange:
        return StateChange(
            self.id, self.kind, RequestStatus.PROCESSING, self.owner_id, self.batch_id, None,
            self.created_at, self.started_at, None, self.category,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class StateChange:
    """A row's state right after a transition: what its status event carries (schemas/events.py)."""

    id: uuid.UUID
    kind: str
    status: str
    owner_id: str | None
    batch_id: uuid.UUID | None
    error_code: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    category: str | None  # for the metrics' labels


STATE_CHANGE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StateChange))


@dataclass(frozen=True, slots=True)
class ClaimRef:
    """Which claim of a row a worker holds. A row whose lease ran out is taken back and claimed again
    (attempts + 1); from then on it no longer accepts writes made under the earlier claim, so a
    worker that outlived its lease cannot overwrite (or double-finish) the new claimant's work."""

    request_id: uuid.UUID
    attempts: int


_CLAIM_VALUES: dict[str, Any] = {
    "status": RequestStatus.PROCESSING,
    "started_at": bindparam("now"),
    "updated_at": bindparam("now"),
    "lease_expires_at": bindparam("lease_expires_at"),
    "attempts": _C.attempts + 1,
}
_CLAIMED_COLUMNS = tuple(_C[f.name] for f in fields(ClaimedRequest))
CLAIM = (
    update(_TABLE)
    .where(_C.id == bindparam("request_id"), _C.status == RequestStatus.QUEUED)
    .values(**_CLAIM_VALUES)
    .returning(*_CLAIMED_COLUMNS)
)
# PostgreSQL only (`= ANY(array)`): every listed row still queued, claimed by one statement.
CLAIM_MANY = (
    update(_TABLE)
    .where(_C.id == any_(bindparam("request_ids", type_=ARRAY(Uuid()))), _C.status == RequestStatus.QUEUED)
    .values(**_CLAIM_VALUES)
    .returning(*_CLAIMED_COLUMNS)
)

# Only a row still `processing` under the same claim is finished: a request cancelled meanwhile
# stays cancelled, and one taken back and claimed again belongs to its new claimant.
_STILL_PROCESSING = (
    _C.id == bindparam("request_id"),
    _C.status == RequestStatus.PROCESSING,
    _C.attempts == bindparam("claimed_attempts"),
)
# Parameters for SET are named `new_<column>`: a bind named like a column it sets is reserved.
_ACCOUNTING: dict[str, Any] = {
    column: bindparam(f"new_{column}")
    for column in (
        "prompt_tokens", "completion_tokens", "total_tokens", "tokens_estimated",
        "llm_calls", "llm_latency_ms", "llm_backend", "llm_model",
        "cached_prompt_tokens", "cached_from", "tokens_saved",
    )
}  # fmt: skip
_ACCOUNTING["transcript"] = bindparam("new_transcript", type_=_C.transcript.type)
COMPLETE = (
    update(_TABLE)
    .where(*_STILL_PROCESSING)
    .values(
        status=RequestStatus.COMPLETED,
        result=bindparam("new_result", type_=_C.result.type),
        # No category or template version given: keep what the row has (one statement for both).
        category=func.coalesce(bindparam("new_category", type_=_C.category.type), _C.category),
        template_version=func.coalesce(
            bindparam("new_template_version", type_=_C.template_version.type), _C.template_version
        ),
        finished_at=bindparam("now"),
        updated_at=bindparam("now"),
        lease_expires_at=None,
        **_ACCOUNTING,
    )
    .returning(*(_C[name] for name in STATE_CHANGE_COLUMNS))
)
FAIL = (
    update(_TABLE)
    .where(*_STILL_PROCESSING)
    .values(
        status=RequestStatus.FAILED,
        error_code=bindparam("new_error_code"),
        error_message=bindparam("new_error_message"),
        finished_at=bindparam("now"),
        updated_at=bindparam("now"),
        lease_expires_at=None,
        **_ACCOUNTING,
    )
    .returning(*(_C[name] for name in STATE_CHANGE_COLUMNS))
)
RELEASE = (
    update(_TABLE)
    .where(*_STILL_PROCESSING)
    .values(status=RequestStatus.QUEUED, lease_expires_at=None, started_at=None, updated_at=bindparam("now"))
)


def claim_params(request_id: uuid.UUID, lease_seconds: int) -> dict[str, Any]:
    now = utcnow()
    return {"request_id": request_id, "now": now, "lease_expires_at": now + timedelta(seconds=lease_seconds)}


def claim_many_params(request_ids: list[uuid.UUID], lease_seconds: int) -> dict[str, Any]:
    now = utcnow()
    return {
        "request_ids": request_ids,
        "now": now,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
    }


def _claim_params(claim: ClaimRef) -> dict[str, Any]:
    return {"request_id": claim.request_id, "claimed_attempts": claim.attempts, "now": utcnow()}


def complete_params(
    claim: ClaimRef,
    result: Any,
    category: str | None,
    accounting: LLMAccounting,
    template_version: int | None,
) -> dict[str, Any]:
    return {
        **_claim_params(claim),
        "new_result": result,
        "new_category": category or None,
        "new_template_version": template_version,
        **_accounting_params(accounting),
    }


def fail_params(claim: ClaimRef, code: str, message: str, accounting: LLMAccounting) -> dict[str, Any]:
    return {
        **_claim_params(claim),
        "new_error_code": code,
        "new_error_message": message,
        **_accounting_params(accounting),
    }


def release_params(claim: ClaimRef) -> dict[str, Any]:
    return _claim_params(claim)


def _accounting_params(accounting: LLMAccounting) -> dict[str, Any]:
    return {f"new_{column}": value for column, value in accounting.as_values().items()}


async def claim(
    connection: AsyncConnection, request_id: uuid.UUID, lease_seconds: int
) -> ClaimedRequest | None:
    """queued → processing, atomically. None when the row is not queued (someone else has it)."""
    row = (await connection.execute(CLAIM, claim_params(request_id, lease_seconds))).first()
    return ClaimedRequest(*row) if row is not None else None


async def complete(
    connection: AsyncConnection,
    claim: ClaimRef,
    *,
    result: Any,
    category: str | None,
    accounting: LLMAccounting,
    template_version: int | None = None,
) -> StateChange | None:
    """processing → completed with the result; None when the row is no longer processing."""
    params = complete_params(claim, result, category, accounting, template_version)
    return await _changed(connection, COMPLETE, params)


async def fail(
    connection: AsyncConnection,
    claim: ClaimRef,
    *,
    code: str,
    message: str,
    accounting: LLMAccounting,
) -> StateChange | None:
    """processing → failed with the error; None when the row is no longer processing."""
    return await _changed(connection, FAIL, fail_params(claim, code, message, accounting))


async def release(connection: AsyncConnection, claim: ClaimRef) -> bool:
    """processing → queued, for work interrupted by shutdown so that redelivery can claim it again."""
    return await _hit_one(connection, RELEASE, release_params(claim))


async def _hit_one(connection: AsyncConnection, statement: Any, params: dict[str, Any]) -> bool:
    return (await connection.execute(statement, params)).rowcount == 1


async def _changed(connection: AsyncConnection, statement: Any, params: dict[str, Any]) -> StateChange | None:
    row = (await connection.execute(statement, params)).first()
    return StateChange(*row) if row is not None else None


# --- status transitions of the API and the sweeper -------------------------------------------------


async def _transition(session: AsyncSession, *conditions: Any, **values: Any) -> int:
    """One conditional UPDATE; the conditions make every status change race-safe. Returns rows hit."""
    stmt = (
        update(_T)
        .where(*conditions)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).rowcount  # type: ignore[attr-defined]


async def _transition_returning(session: AsyncSession, *conditions: Any, **values: Any) -> list[StateChange]:
    """Like _transition, answering each changed row's new state (for its status event)."""
    stmt = (
        update(_T)
        .where(*conditions)
        .values(updated_at=utcnow(), **values)
        .returning(*(_C[name] for name in STATE_CHANGE_COLUMNS))
        .execution_options(synchronize_session=False)
    )
    return [StateChange(*row) for row in (await session.execute(stmt)).all()]


def _final(status: str, code: str | None = None, message: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "lease_expires_at": None}
    if code is not None:
        values.update(error_code=code, error_message=message)
    return values


async def fail_unpublished(session: AsyncSession, request_id: uuid.UUID, message: str) -> None:
    """A queued request whose message the broker refused: it will never be processed. Its
    idempotency key is freed, so the client's retry (the 503 asks for one) is a fresh submit."""
    final = _final(RequestStatus.FAILED, "broker_unavailable", message)
    await _transition(
        session, _T.id == request_id, _T.status == RequestStatus.QUEUED, idempotency_key=None, **final
    )


async def cancel(session: AsyncSession, request_id: uuid.UUID) -> StateChange | None:
    final = _final(RequestStatus.CANCELLED)
    changed = await _transition_returning(
        session, _T.id == request_id, _T.status.in_(RequestStatus.ACTIVE), **final
    )
    return changed[0] if changed else None


async def end_unstarted_batch_lines(
    session: AsyncSession, batch_id: uuid.UUID, status: str, code: str, message: str
) -> list[StateChange]:
    """A batch's lines not started yet (held back, or queued in the lane) end as `status` (cancelled
    or expired); lines already running finish normally."""
    # No longer held for the feeder either ('batch-held' → 'batch'): it must never publish them.
    final = {**_final(status, code, message), "priority": "batch"}
    return await _transition_returning(
        session, _T.batch_id == batch_id, _T.status == RequestStatus.QUEUED, **final
    )


# --- sweeping: requests the broker or a worker lost -------------------------------------------------


async def expire_overdue(session: AsyncSession, created_before: datetime) -> list[StateChange]:
    final = _final(RequestStatus.EXPIRED, "expired", "The request was not finished within its time to live.")
    return await _transition_returning(
        session, _T.status.in_(RequestStatus.ACTIVE), _T.created_at < created_before, **final
    )


async def fail_exhausted_leases(session: AsyncSession, max_attempts: int) -> list[StateChange]:
    """Abandoned processing rows that already used every attempt end as failed."""
    final = _final(RequestStatus.FAILED, "worker_lost", "Processing was interrupted too many times.")
    return await _transition_returning(
        session,
        _T.status == RequestStatus.PROCESSING,
        _T.lease_expires_at < utcnow(),
        _T.attempts >= max_attempts,
        **final,
    )


def _lost(stale_before: datetime, now: datetime) -> ColumnElement[bool]:
    # Batch lines still held by the feeder ('batch-held') were never published: not lost, waiting.
    return or_(
        (_T.status == RequestStatus.QUEUED) & (_T.updated_at < stale_before) & (_T.priority != "batch-held"),
        (_T.status == RequestStatus.PROCESSING) & (_T.lease_expires_at < now),
    )


async def requeue_candidates(
    session: AsyncSession, *, stale_before: datetime, limit: int
) -> list[tuple[uuid.UUID, str, bool]]:
    """(id, status, is a batch line) of rows that may be lost: queued and untouched since
    `stale_before` (published then, and not picked up since), or processing with an expired lease."""
    stmt = (
        select(_T.id, _T.status, _T.batch_id.is_not(None))
        .where(_lost(stale_before, utcnow()))
        .order_by(_T.updated_at)
        .limit(limit)
    )
    return [(row[0], row[1], bool(row[2])) for row in (await session.execute(stmt)).all()]


async def take_back_for_requeue(
    session: AsyncSession, *, ids: Sequence[uuid.UUID], stale_before: datetime
) -> Sequence[tuple[uuid.UUID, str, int, bool]]:
    """The listed rows, if still lost, reset to queued with a fresh `updated_at` (so the next sweep
    skips them): (id, kind, attempts, is a batch line) of each one to publish again."""
    if not ids:
        return []
    now = utcnow()
    stmt = (
        update(_T)
        .where(_T.id.in_(ids), _lost(stale_before, now))
        .values(status=RequestStatus.QUEUED, updated_at=now, lease_expires_at=None)
        .returning(_T.id, _T.kind, _T.attempts, _T.batch_id.is_not(None))
        .execution_options(synchronize_session=False)
    )
    return [(row[0], row[1], row[2], bool(row[3])) for row in (await session.execute(stmt)).all()]


async def requeue_failed(session: AsyncSession, request_id: uuid.UUID) -> StateChange | None:
    """failed → queued again (the operator's re-queue, e.g. after a dead-lettered message): the
    error is cleared, attempts and timestamps of submission are kept. None when not failed."""
    changed = await _transition_returning(
        session,
        _T.id == request_id,
        _T.status == RequestStatus.FAILED,
        status=RequestStatus.QUEUED,
        error_code=None,
        error_message=None,
        result=None,
        started_at=None,
        finished_at=None,
        lease_expires_at=None,
    )
    return changed[0] if changed else None
