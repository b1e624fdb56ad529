"""Usage per day: closed days are summed once into usage_days and read from there; days that may
still change are summed live; the figures are the same either way."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from service.config import Settings
from service.db import console_repo, requests_repo
from service.db.console_models import UsageDay, UsageDayRolled
from service.db.models import AnalysisRequest, utcnow
from service.db.session import create_engine, create_session_factory


async def test_closed_days_are_summed_once_and_open_days_live(own_postgres_url: str) -> None:
    settings = Settings(_env_file=None, database_url=own_postgres_url, db_pool_size=2)  # type: ignore[call-arg]
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    now = utcnow()
    today = console_repo.day_start(now)
    try:
        async with sessions() as session:
            # Three rows a day for five days (days 4..0 ago), 100 tokens each; two owners, two models.
            for age in range(5):
                for n in range(3):
                    request_id = uuid.uuid4()
                    await requests_repo.insert_request(
                        session, {"id": request_id, "kind": "chat", "owner_id": f"owner{n % 2}"}
                    )
                    await session.execute(
                        update(AnalysisRequest)
                        .where(AnalysisRequest.id == request_id)
                        .values(
                            status="completed",
                            created_at=today - timedelta(days=age) + timedelta(hours=1 + n),
                            total_tokens=100,
                            prompt_tokens=60,
                            completion_tokens=40,
                            llm_model=f"model{n % 2}",
                        )
                    )
            await session.commit()

        async def figures() -> dict[str, int]:
            async with sessions() as session:
                lines = await console_repo.usage_by_day(session, None, today - timedelta(days=4), now)
                await session.commit()
            by_day: dict[str, int] = {}
            for line in lines:
                by_day[line.day] = by_day.get(line.day, 0) + line.total_tokens
            return by_day

        first = await figures()
        assert list(first.values()) == [300] * 5
        async with sessions() as session:
            summary = await console_repo.usage_summary(session, None, today - timedelta(days=4), now)
        assert summary.by_day == first
        assert summary.by_owner == {"owner0": (10, 1000), "owner1": (5, 500)}
        assert summary.by_model == {"model0": (10, 1000), "model1": (5, 500)}
        assert summary.today_by_owner == {"owner0": (2, 200), "owner1": (1, 100)}
        async with sessions() as session:
            rolled = set((await session.execute(select(UsageDayRolled.day))).scalars())
            assert rolled == {(today - timedelta(days=age)).date() for age in range(1, 5)}  # not today
            assert await session.scalar(select(func.sum(UsageDay.total_tokens))) == 1200
        # Read again: the same figures, from the rollup (rows changed behind its back stay unseen,
        # which is what proves the read comes from usage_days).
        async with sessions() as session:
            await session.execute(
                update(AnalysisRequest)
                .where(AnalysisRequest.created_at < today - timedelta(days=2))
                .values(total_tokens=1)
            )
            await session.commit()
        assert await figures() == first
        # A request still queued three days ago keeps that day and the later ones live.
        async with sessions() as session:
            await session.execute(
                update(AnalysisRequest)
                .where(AnalysisRequest.created_at < today - timedelta(days=3))
                .values(status="queued")
            )
            await console_repo.forget_day(session, today - timedelta(days=4))
            await console_repo.forget_day(session, today - timedelta(days=3))
            await session.commit()
        live = await figures()
        assert live[(today - timedelta(days=4)).date().isoformat()] == 3  # read live: the changed rows
        assert live[(today - timedelta(days=1)).date().isoformat()] == 300
        # One owner's figures: only its rows, from the rollup and live alike.
        async with sessions() as session:
            mine = await console_repo.usage_by_day(session, "owner1", today - timedelta(days=4), now)
        assert {line.owner_id for line in mine} == {"owner1"} and len({line.day for line in mine}) == 5
    finally:
        await engine.dispose()
