"""SQL of the operator console (service/console): its sessions, and the read-only figures its pages
show over requests, usage and prompt versions. Callers own the session and decide when to commit.

Every listing reads newest first through one of the (column, created_at, id) indexes of migration
0008 with (created_at, id) as the keyset, so a page costs the same on page 1 and page 10,000.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from service.db.batch_models import Batch
from service.db.console_models import ConsoleSession, UsageDay, UsageDayRolled
from service.db.feedback_models import Feedback, Rating
from service.db.key_models import ApiKey
from service.db.models import ACTIVE_ROWS, AnalysisRequest, RequestStatus, utcnow

_T = AnalysisRequest
# The statuses written out, not bound: a prepared statement's generic plan can then still use the
# partial index of active rows (ix_requests_active), whose condition this is.
_ACTIVE = text(ACTIVE_ROWS)


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
        .where(_ACTIVE)
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
#
# Usage per UTC day, owner and model. A day whose requests are all final never changes again: it is
# summed once into usage_days (on the first view that needs it) and read from there; only the days
# that may still change (today, and any day with a request still queued or processing) are summed
# live from requests. A 90-day chart thus reads a few hundred rollup rows and a day or two of
# requests, not 90 days of them.


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
    # A date, not text: PostgreSQL formats text per row (to_char) at several times the cost.
    if _dialect(session) == "postgresql":
        return cast(func.timezone("UTC", _T.created_at), Date)
    return func.strftime("%Y-%m-%d", _T.created_at)


def _day_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def open_since(session: AsyncSession, now: datetime) -> datetime:
    """The start of the first day that may still change: today, or the day of the oldest request
    still queued or processing (the active rows' partial index)."""
    # Grouped, so the planner cannot turn min() into a walk of the time index in created_at order
    # until it meets an active row (a generic plan did: a second, instead of a millisecond).
    stmt = select(func.min(_T.created_at)).where(_ACTIVE).group_by(_T.status)
    oldest = min((value for value in (await session.scalars(stmt)) if value is not None), default=None)
    today = day_start(now)
    return min(today, day_start(oldest)) if oldest is not None else today


def _sums() -> tuple[Any, ...]:
    return (
        func.count(),
        func.coalesce(func.sum(_T.prompt_tokens), 0),
        func.coalesce(func.sum(_T.completion_tokens), 0),
        func.coalesce(func.sum(_T.total_tokens), 0),
    )


def live_usage_statement(session: AsyncSession, owner_id: str | None, since: datetime) -> Any:
    day = _day(session).label("day")
    stmt = select(day, _T.owner_id, _T.llm_model, *_sums()).where(_T.created_at >= since)
    if owner_id is not None:
        stmt = stmt.where(_T.owner_id == owner_id)
    return stmt.group_by(day, _T.owner_id, _T.llm_model)


def day_sums_statement(day: date) -> Any:
    """One day's sums per owner and model, as usage_days stores them (the time index covers it)."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    owner, model = func.coalesce(_T.owner_id, ""), func.coalesce(_T.llm_model, "")
    return (
        select(literal(day, Date), owner, model, *_sums())
        .where(_T.created_at >= start, _T.created_at < start + timedelta(days=1))
        .group_by(owner, model)
    )


def _insert(session: AsyncSession, table: Any) -> Any:
    return (pg_insert if _dialect(session) == "postgresql" else sqlite_insert)(table)


async def roll_up(session: AsyncSession, first: date, end: date) -> int:
    """Sum every day in [first, end) not summed yet into usage_days; the caller commits. Two
    processes doing it at once: the second finds the day's marker and leaves the day alone."""
    rolled = set(
        (
            await session.execute(
                select(UsageDayRolled.day).where(UsageDayRolled.day >= first, UsageDayRolled.day < end)
            )
        ).scalars()
    )
    added = 0
    day = first
    while day < end:
        if day not in rolled:
            marker = _insert(session, UsageDayRolled).values(day=day, rolled_at=utcnow())
            claimed = await session.execute(marker.on_conflict_do_nothing().returning(UsageDayRolled.day))
            if claimed.first() is not None:
                sums = day_sums_statement(day)
                columns = ["day", "owner_id", "model", "requests", "prompt_tokens", "completion_tokens"]
                await session.execute(insert(UsageDay).from_select([*columns, "total_tokens"], sums))
                added += 1
        day += timedelta(days=1)
    return added


async def forget_day(session: AsyncSession, moment: datetime) -> None:
    """A request of that day changes again (re-queued): its day is summed anew when next viewed."""
    day = day_start(moment).date()
    await session.execute(delete(UsageDay).where(UsageDay.day == day))
    await session.execute(delete(UsageDayRolled).where(UsageDayRolled.day == day))


async def usage_by_day(
    session: AsyncSession, owner_id: str | None, since: datetime, now: datetime
) -> list[UsageLine]:
    """Requests and tokens per UTC day, owner and model from the day of `since` on (one owner, or
    every one). May sum closed days into usage_days first: the caller commits."""
    first = day_start(since)
    boundary = max(first, await open_since(session, now))
    await roll_up(session, first.date(), boundary.date())
    # Core columns and the database's order: no ORM rows to build, nothing to sort but the live part.
    u = UsageDay.__table__.c
    closed = (
        select(u.day, u.owner_id, u.model, u.requests, u.prompt_tokens, u.completion_tokens, u.total_tokens)
        .where(u.day >= first.date(), u.day < boundary.date())
        .order_by(u.day, u.owner_id, u.model)
    )
    if owner_id is not None:
        closed = closed.where(u.owner_id == owner_id)
    lines = [
        UsageLine(_day_text(d), o or None, m or None, n, p, c, t)
        for d, o, m, n, p, c, t in (await session.execute(closed)).all()
    ]
    live = (await session.execute(live_usage_statement(session, owner_id, boundary))).all()
    lines += sorted(
        (UsageLine(_day_text(d), o, m, int(n), int(p), int(c), int(t)) for d, o, m, n, p, c, t in live),
        key=lambda line: (line.day, line.owner_id or "", line.model or ""),
    )
    return lines


@dataclass
class UsageSummary:
    """What the usage and keys pages show: totals per day, per owner and per model, and today's per
    owner. Closed days are summed by the database over usage_days (a few rows per day), so a
    90-day period costs about what a 2-day one does."""

    by_day: dict[str, int] = field(default_factory=dict)  # tokens
    by_owner: dict[str | None, tuple[int, int]] = field(default_factory=dict)  # requests, tokens
    by_model: dict[str | None, tuple[int, int]] = field(default_factory=dict)
    today_by_owner: dict[str | None, tuple[int, int]] = field(default_factory=dict)

    def add(self, table: dict[Any, tuple[int, int]], key: Any, requests: int, tokens: int) -> None:
        n, t = table.get(key, (0, 0))
        table[key] = (n + int(requests), t + int(tokens))


async def usage_summary(
    session: AsyncSession, owner_id: str | None, since: datetime, now: datetime
) -> UsageSummary:
    """usage_by_day's figures, summed per dimension (may sum closed days first: the caller commits)."""
    first = day_start(since)
    boundary = max(first, await open_since(session, now))
    await roll_up(session, first.date(), boundary.date())
    summary = UsageSummary()
    closed = [UsageDay.day >= first.date(), UsageDay.day < boundary.date()]
    if owner_id is not None:
        closed.append(UsageDay.owner_id == owner_id)
    sums = (func.sum(UsageDay.requests), func.sum(UsageDay.total_tokens))
    for column, table in ((UsageDay.owner_id, summary.by_owner), (UsageDay.model, summary.by_model)):
        for key, n, t in (await session.execute(select(column, *sums).where(*closed).group_by(column))).all():
            summary.add(table, key or None, n, t)
    days = select(UsageDay.day, sums[1]).where(*closed).group_by(UsageDay.day)
    for closed_day, tokens in (await session.execute(days)).all():
        summary.by_day[_day_text(closed_day)] = int(tokens)
    today = day_start(now).date().isoformat()
    live = (await session.execute(live_usage_statement(session, owner_id, boundary))).all()
    for value, owner, model, n, _, _, t in live:
        day = _day_text(value)
        summary.by_day[day] = summary.by_day.get(day, 0) + int(t)
        summary.add(summary.by_owner, owner, n, t)
        summary.add(summary.by_model, model, n, t)
        if day == today:
            summary.add(summary.today_by_owner, owner, n, t)
    summary.by_day = dict(sorted(summary.by_day.items()))
    return summary


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
