"""SQL of the operator console (service/console): its sessions, and the read-only figures its pages
show over requests, usage and prompt versions. Callers own the session and decide when to commit.

Every listing reads newest first through one of the (column, created_at, id) indexes of migration
0008 with (created_at, id) as the keyset, so a page costs the same on page 1 and page 10,000.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, cast, delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.batch_models import Batch
from service.db.console_models import ConsoleSession
from service.db.feedback_models import Feedback, Rating
from service.db.key_models import ApiKey
from service.db.models import AnalysisRequest, RequestStatus

_T = AnalysisRequest


# --- sessions ------------------------------------------------------------------------------------


async def add_session(session: AsyncSession, row: ConsoleSession) -> None:
    session.add(row)
    await session.flush()


async def live_session(
    session: AsyncSession, token_hash: str, now: datetime
) -> tuple[ConsoleSession, ApiKey] | None:
    """The session and its key, if the session has not expired and its key is not revoked."""
    stmt = (
        select(ConsoleSession, ApiKey)
        .join(ApiKey, ApiKey.id == ConsoleSession.key_id)
        .where(
            ConsoleSession.token_hash == token_hash,
            ConsoleSession.expires_at > now,
            ApiKey.revoked_at.is_(None),
        )
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row is not None else None


async def delete_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))


async def purge_expired_sessions(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))


# --- request listing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestFilter:
    owner_id: str | None = None  # None: every owner (admins only)
    status: str | None = None
    kind: str | None = None
    category: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for column, value in (
            (_T.owner_id, self.owner_id),
            (_T.status, self.status),
            (_T.kind, self.kind),
            (_T.category, self.category),
        ):
            if value is not None:
                found.append(column == value)
        if self.since is not None:
            found.append(_T.created_at >= self.since)
        if self.until is not None:
            found.append(_T.created_at < self.until)
        return found


@dataclass(frozen=True, slots=True)
class RequestLine:
    id: uuid.UUID
    kind: str
    status: str
    category: str | None
    owner_id: str | None
    batch_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None
    total_tokens: int
    llm_model: str | None
    error_code: str | None


_LINE_COLUMNS = tuple(getattr(_T, name) for name in RequestLine.__dataclass_fields__)


def listing_statement(where: RequestFilter, before: tuple[datetime, uuid.UUID] | None, limit: int) -> Any:
    stmt = select(*_LINE_COLUMNS).where(*where.conditions())
    if before is not None:
        stmt = stmt.where(tuple_(_T.created_at, _T.id) < tuple_(*before))
    return stmt.order_by(_T.created_at.desc(), _T.id.desc()).limit(limit)


async def list_requests(
    session: AsyncSession, where: RequestFilter, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[RequestLine]:
    rows = (await session.execute(listing_statement(where, before, limit))).all()
    return [RequestLine(*row) for row in rows]


async def request_keyset(session: AsyncSession, request_id: uuid.UUID) -> tuple[datetime, uuid.UUID] | None:
    created = await session.scalar(select(_T.created_at).where(_T.id == request_id))
    return (created, request_id) if created is not None else None


# --- overview ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneFigures:
    queued: int
    oldest_queued_at: datetime | None
    processing: int


async def lane_figures(session: AsyncSession) -> dict[str, LaneFigures]:
    """Per lane: queued rows and the oldest one (the lanes' partial indexes), and rows in flight."""
    lane = case((_T.batch_id.is_(None), "interactive"), else_="batch")
    stmt = (
        select(lane, _T.status, func.count(), func.min(_T.created_at))
        .where(_T.status.in_(RequestStatus.ACTIVE))
        .group_by(lane, _T.status)
    )
    found: dict[tuple[str, str], tuple[int, datetime | None]] = {
        (row[0], row[1]): (int(row[2]), row[3]) for row in (await session.execute(stmt)).all()
    }
    figures = {}
    for name in ("interactive", "batch"):
        queued, oldest = found.get((name, RequestStatus.QUEUED), (0, None))
        processing = found.get((name, RequestStatus.PROCESSING), (0, None))[0]
        figures[name] = LaneFigures(queued, oldest, processing)
    return figures


@dataclass(frozen=True, slots=True)
class HourFigures:
    finished: int
    completed: int
    per_minute: list[tuple[datetime, int]]  # completions per minute, oldest first
    percentiles: dict[str, float | None]  # seconds from submit to final: p50, p95, p99
    errors: list[tuple[str, int]]  # error code, count; most frequent first


async def finished_since(session: AsyncSession, since: datetime, owner_id: str | None) -> HourFigures:
    """What finished since `since` (the finished_at index): throughput, latency and error classes;
    one owner's, or every owner's (None)."""
    recent = _T.finished_at >= since
    if owner_id is not None:
        recent = and_(recent, _T.owner_id == owner_id)
    by_status = dict(
        (await session.execute(select(_T.status, func.count()).where(recent).group_by(_T.status))).all()
    )
    errors = (
        await session.execute(
            select(_T.error_code, func.count())
            .where(recent, _T.error_code.is_not(None))
            .group_by(_T.error_code)
            .order_by(func.count().desc())
            .limit(12)
        )
    ).all()
    done = and_(recent, _T.status == RequestStatus.COMPLETED)
    if _dialect(session) == "postgresql":
        minute = func.date_trunc("minute", _T.finished_at)
        per_minute = (
            await session.execute(select(minute, func.count()).where(done).group_by(minute).order_by(minute))
        ).all()
        seconds = func.extract("epoch", _T.finished_at - _T.created_at)
        quantiles = (
            await session.execute(
                select(
                    *(func.percentile_cont(q).within_group(cast(seconds, Float)) for q in (0.5, 0.95, 0.99))
                ).where(done)
            )
        ).one()
        percentiles = dict(zip(("p50", "p95", "p99"), (_num(v) for v in quantiles), strict=True))
    else:  # SQLite (the embedded default): no percentile or date functions worth the name
        spans = (await session.execute(select(_T.created_at, _T.finished_at).where(done).limit(50_000))).all()
        durations = sorted((f - c).total_seconds() for c, f in spans if f is not None)
        percentiles = {
            name: _quantile(durations, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        }
        counted: dict[datetime, int] = {}
        for _, finished in spans:
            if finished is not None:
                key = finished.replace(second=0, microsecond=0)
                counted[key] = counted.get(key, 0) + 1
        per_minute = sorted(counted.items())  # type: ignore[arg-type]
    return HourFigures(
        finished=sum(int(v) for v in by_status.values()),
        completed=int(by_status.get(RequestStatus.COMPLETED, 0)),
        per_minute=[(m, int(n)) for m, n in per_minute],
        percentiles=percentiles,
        errors=[(str(code), int(n)) for code, n in errors],
    )


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _num(value: Any) -> float | None:
    return float(value) if value is not None else None


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- usage ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageLine:
    day: str  # YYYY-MM-DD (UTC)
    owner_id: str | None
    model: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def _day(session: AsyncSession) -> Any:
    if _dialect(session) == "postgresql":
        return func.to_char(func.timezone("UTC", _T.created_at), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", _T.created_at)


def usage_statement(session: AsyncSession, owner_id: str | None, since: datetime) -> Any:
    day = _day(session).label("day")
    stmt = select(
        day,
        _T.owner_id,
        _T.llm_model,
        func.count(),
        func.coalesce(func.sum(_T.prompt_tokens), 0),
        func.coalesce(func.sum(_T.completion_tokens), 0),
        func.coalesce(func.sum(_T.total_tokens), 0),
    ).where(_T.created_at >= since)
    if owner_id is not None:
        stmt = stmt.where(_T.owner_id == owner_id)
    return stmt.group_by(day, _T.owner_id, _T.llm_model).order_by(day, _T.owner_id, _T.llm_model)


async def usage_by_day(session: AsyncSession, owner_id: str | None, since: datetime) -> list[UsageLine]:
    """Requests and tokens per UTC day, owner and model since `since` (one owner, or every one)."""
    rows = (await session.execute(usage_statement(session, owner_id, since))).all()
    return [UsageLine(str(d), o, m, int(n), int(p), int(c), int(t)) for d, o, m, n, p, c, t in rows]


async def tokens_by_owner(session: AsyncSession, since: datetime) -> dict[str | None, tuple[int, int]]:
    """(requests, tokens) per owner since `since`: the keys page's usage column."""
    stmt = (
        select(_T.owner_id, func.count(), func.coalesce(func.sum(_T.total_tokens), 0))
        .where(_T.created_at >= since)
        .group_by(_T.owner_id)
    )
    return {owner: (int(n), int(t)) for owner, n, t in (await session.execute(stmt)).all()}


# --- prompt versions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionFigures:
    requests: int = 0
    invalid_answers: int = 0
    mean_tokens: float | None = None
    good: int = 0
    bad: int = 0

    @property
    def invalid_rate(self) -> float | None:
        return self.invalid_answers / self.requests if self.requests else None

    @property
    def score(self) -> float | None:
        """Share of good ratings among the ratings given (None without any)."""
        rated = self.good + self.bad
        return self.good / rated if rated else None


def version_statement(category: str, since: datetime) -> Any:
    invalid = case((_T.error_code == "answer_invalid", 1), else_=0)
    return (
        select(_T.template_version, func.count(), func.sum(invalid), func.avg(_T.total_tokens))
        .where(_T.category == category, _T.created_at >= since, _T.status.in_(RequestStatus.FINAL))
        .group_by(_T.template_version)
    )


async def version_figures(session: AsyncSession, category: str, since: datetime) -> dict[int, VersionFigures]:
    """Per template version of a category, over requests submitted since `since`: how many, how
    many answers failed validation, mean tokens, and the good/bad ratings they got."""
    counted = {
        version: (int(n), int(invalid or 0), _num(mean))
        for version, n, invalid, mean in (await session.execute(version_statement(category, since))).all()
        if version is not None
    }
    ratings = (
        await session.execute(
            select(_T.template_version, Feedback.rating, func.count())
            .join(_T, _T.id == Feedback.request_id)
            .where(_T.category == category, _T.created_at >= since, _T.template_version.is_not(None))
            .group_by(_T.template_version, Feedback.rating)
        )
    ).all()
    rated: dict[int, dict[str, int]] = {}
    for version, rating, n in ratings:
        rated.setdefault(int(version or 0), {})[rating] = int(n)
    figures = {}
    for version in set(counted) | set(rated):
        n, invalid, mean = counted.get(version, (0, 0, None))
        votes = rated.get(version, {})
        figures[version] = VersionFigures(
            n, invalid, mean, votes.get(Rating.GOOD, 0), votes.get(Rating.BAD, 0)
        )
    return figures


# --- batches -------------------------------------------------------------------------------------


async def recent_batches(session: AsyncSession, owner_id: str | None, limit: int) -> list[Batch]:
    """Newest batches of one owner, or of every owner (None; batches_repo's None is the anonymous
    owner, so this is not the same query)."""
    stmt = select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
    if owner_id is not None:
        stmt = stmt.where(Batch.owner_id == owner_id)
    return list((await session.execute(stmt)).scalars())
