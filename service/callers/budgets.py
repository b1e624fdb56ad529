"""Token budgets per day and month (and tokens per minute), enforced on live spend.

How in-flight work counts: at submit, every request of the owner still queued or processing counts
BUDGET_RESERVE_TOKENS_PER_REQUEST tokens on top of the tokens of finished requests, so concurrent
submits cannot run far past a budget while earlier ones are still being answered. The worker checks
again just before the first LLM call, against finished spend only (the request itself is one of the
in-flight ones): a request whose owner ran out meanwhile fails `budget_exceeded` and costs nothing.
What can still overshoot a budget is the work already past that check: at most the requests being
processed at that moment. A request counts in the period in which it was submitted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.callers.model import ANONYMOUS_OWNER, Caller, Limits, anonymous_limits, limits_of
from service.config import Settings
from service.db import api_keys_repo, usage_repo
from service.db.models import utcnow
from service.errors import TooManyRequests

BUDGET_EXCEEDED = "budget_exceeded"
_CACHE_LIMIT = 10_000
_LABEL = {"minute": "per-minute", "day": "daily", "month": "monthly"}


def period_bounds(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """name -> (start, when it resets) for the sliding minute and the UTC calendar day and month."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {
        "minute": (now - timedelta(minutes=1), now + timedelta(minutes=1)),
        "day": (day, day + timedelta(days=1)),
        "month": (month, next_month),
    }


@dataclass(frozen=True, slots=True)
class BudgetPeriod:
    name: str
    limit: int
    spent: int  # tokens of finished requests submitted in the period
    reserved: int  # in-flight requests at the reserve figure
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.spent - self.reserved)


def _limit_for(limits: Limits, period: str) -> int | None:
    return {"minute": limits.tokens_per_minute, "day": limits.daily_tokens, "month": limits.monthly_tokens}[
        period
    ]


class Budgets:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._reserve = settings.budget_reserve_tokens_per_request
        # owner -> (monotonic expiry, limits): the worker's view of a key's figures.
        self._limits: dict[str, tuple[float, Limits | None]] = {}

    async def periods(self, owner_id: str, limits: Limits, now: datetime | None = None) -> list[BudgetPeriod]:
        """The periods that have a limit, with live spend (one query; none without limits)."""
        bounds = period_bounds(now or utcnow())
        limited = {name: _limit_for(limits, name) for name in bounds}
        starts = {name: bounds[name][0] for name, limit in limited.items() if limit is not None}
        if not starts:
            return []
        async with self._sessions() as session:
            spend = await usage_repo.spend_since(session, owner_id, starts)
        return [
            BudgetPeriod(name, limited[name] or 0, row.tokens, row.active * self._reserve, bounds[name][1])
            for name, row in spend.items()
        ]

    async def check_submit(self, caller: Caller) -> None:
        """429 when a period has nothing left, counting in-flight requests at the reserve figure."""
        if not caller.limits.has_token_limits:
            return
        now = utcnow()
        for period in await self.periods(caller.owner_id, caller.limits, now):
            if period.spent + period.reserved >= period.limit:
                raise _refusal(period, now)

    async def refusal_for(self, owner_id: str | None) -> str | None:
        """The worker's check before any LLM call: a message when the owner's finished spend has
        reached a daily or monthly budget, else None."""
        if owner_id is None:
            return None
        limits = await self._owner_limits(owner_id)
        if limits is None or (limits.daily_tokens is None and limits.monthly_tokens is None):
            return None
        budgets = Limits(daily_tokens=limits.daily_tokens, monthly_tokens=limits.monthly_tokens)
        for period in await self.periods(owner_id, budgets):
            if period.spent >= period.limit:
                return (
                    f"The {_LABEL[period.name]} token budget of {period.limit} is spent "
                    f"({period.spent} used); it resets at {period.resets_at.isoformat()}."
                )
        return None

    async def _owner_limits(self, owner_id: str) -> Limits | None:
        if owner_id == ANONYMOUS_OWNER:
            return anonymous_limits(self._settings)
        now = time.monotonic()
        cached = self._limits.get(owner_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            row = await api_keys_repo.get_key(session, owner_id)
        limits = limits_of(row) if row is not None else None
        if len(self._limits) >= _CACHE_LIMIT:
            self._limits.clear()
        self._limits[owner_id] = (now + self._settings.api_key_cache_seconds, limits)
        return limits


def _refusal(period: BudgetPeriod, now: datetime) -> TooManyRequests:
    retry_after = max(1, math.ceil((period.resets_at - now).total_seconds()))
    details = {
        "period": period.name,
        "limit": period.limit,
        "spent": period.spent,
        "reserved_in_flight": period.reserved,
        "resets_at": period.resets_at.isoformat(),
    }
    if period.name == "minute":
        return TooManyRequests(
            f"The limit of {period.limit} tokens per minute is reached; retry in {retry_after} s.",
            details=details,
            headers={"Retry-After": str(retry_after)},
        )
    return TooManyRequests(
        f"The {_LABEL[period.name]} token budget of {period.limit} is spent ({period.spent} used, "
        f"{period.reserved} reserved by requests in flight); it resets at {period.resets_at.isoformat()}.",
        code=BUDGET_EXCEEDED,
        details=details,
        headers={"Retry-After": str(retry_after)},
    )
