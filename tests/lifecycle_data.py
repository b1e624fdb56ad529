"""Rows of realistic shape for the lifecycle tests, written straight into the database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from service.db.batch_models import Batch, BatchLine, FilePart, StoredFile
from service.db.feedback_models import Feedback
from service.db.models import AnalysisRequest, RequestStatus, utcnow
from service.db.webhook_models import WebhookDelivery, WebhookEndpoint


@dataclass
class Seeded:
    owner_id: str
    kept: set[uuid.UUID] = field(default_factory=set)  # requests a purge must leave
    purgeable: set[uuid.UUID] = field(default_factory=set)
    batch_id: uuid.UUID | None = None
    files_expired: set[str] = field(default_factory=set)
    files_kept: set[str] = field(default_factory=set)
    batch_files: set[str] = field(default_factory=set)  # the batch's output: goes with the batch


def _request(
    owner_id: str, status: str, created: datetime, finished: datetime | None, **extra: object
) -> AnalysisRequest:
    n = extra.pop("n", 1)
    assert isinstance(n, int)
    return AnalysisRequest(
        id=uuid.uuid4(),
        kind="process",
        status=status,
        query_text="Q3 revenue by region",
        input_data=[["region", "revenue"], ["north", 10 * n]],
        result={"summary": f"answer {n}"} if status == RequestStatus.COMPLETED else None,
        prompt_tokens=100 + n,
        completion_tokens=50 + n,
        total_tokens=150 + 2 * n,
        llm_model="model-a" if n % 2 else "model-b",
        owner_id=owner_id,
        priority="normal",
        created_at=created,
        updated_at=finished or created,
        finished_at=finished,
        **extra,
    )


async def seed_owner(session: AsyncSession, owner_id: str, *, old_days: float = 2) -> Seeded:
    """Old finished rows (purgeable once older than retention), unfinished old rows, a recent row,
    a finished batch with lines and an output file, files past and before their expiry, feedback,
    a webhook endpoint with a delivery."""
    now = utcnow()
    old = now - timedelta(days=old_days)
    seeded = Seeded(owner_id)
    rows: list[AnalysisRequest] = []
    for n, status in enumerate(
        [RequestStatus.COMPLETED] * 4 + [RequestStatus.FAILED, RequestStatus.CANCELLED]
    ):
        rows.append(_request(owner_id, status, old - timedelta(minutes=5), old, n=n))
    seeded.purgeable |= {r.id for r in rows}
    unfinished = [
        _request(owner_id, RequestStatus.QUEUED, old - timedelta(days=1), None, n=7),
        _request(owner_id, RequestStatus.PROCESSING, old - timedelta(days=1), None, n=8),
    ]
    recent = _request(
        owner_id, RequestStatus.COMPLETED, now - timedelta(hours=1), now - timedelta(minutes=59), n=9
    )
    seeded.kept |= {r.id for r in [*unfinished, recent]}
    batch = Batch(
        id=uuid.uuid4(),
        owner_id=owner_id,
        endpoint="/v1/chat/completions",
        surface="openai",
        completion_window="24h",
        status="completed",
        total=3,
        created_at=old - timedelta(hours=2),
        expires_at=old + timedelta(hours=22),
        completed_at=old,
    )
    seeded.batch_id = batch.id
    batch_rows = [
        _request(
            owner_id, RequestStatus.COMPLETED, old - timedelta(hours=1), old, n=10 + i, batch_id=batch.id
        )
        for i in range(3)
    ]
    seeded.purgeable |= {r.id for r in batch_rows}
    session.add_all([*rows, *unfinished, recent, batch, *batch_rows])
    await session.flush()
    session.add_all(
        BatchLine(batch_id=batch.id, line=i, custom_id=f"line-{i}", request_id=r.id)
        for i, r in enumerate(batch_rows)
    )
    files = [
        (batch.id, None),  # the batch's output: goes with it
        (None, now - timedelta(minutes=1)),  # an upload past its expires_after
        (None, now + timedelta(days=1)),  # not yet
    ]
    file_ids = [f"file-{uuid.uuid4().hex[:12]}" for _ in files]
    for file_id, (batch_id, expires_at) in zip(file_ids, files, strict=True):
        session.add(
            StoredFile(
                id=file_id,
                owner_id=owner_id,
                purpose="batch" if batch_id is None else "batch_output",
                filename="x.jsonl",
                bytes=3,
                batch_id=batch_id,
                created_at=old,
                deleted=False,
                expires_at=expires_at,
            )
        )
        if batch_id is not None:
            seeded.batch_files.add(file_id)
        elif expires_at is not None and expires_at > now:
            seeded.files_kept.add(file_id)
        else:
            seeded.files_expired.add(file_id)
    await session.flush()
    session.add_all(FilePart(file_id=file_id, seq=0, data=b"{}\n") for file_id in file_ids)
    session.add(
        Feedback(
            id=uuid.uuid4(),
            request_id=rows[0].id,
            owner_id=owner_id,
            rating="good",
            created_at=old,
            updated_at=old,
        )
    )
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        owner_id=owner_id,
        url="https://hooks.example/x",
        events=["request.completed"],
        secret="whsec_test",
        enabled=True,
        created_at=old,
        updated_at=old,
    )
    session.add(endpoint)
    await session.flush()
    session.add(
        WebhookDelivery(
            id=f"msg_{uuid.uuid4().hex}",
            endpoint_id=endpoint.id,
            event_key=f"{rows[0].id}:completed",
            event_type="request.completed",
            request_id=rows[0].id,
            payload="{}",
            state="delivered",
            attempts=1,
            next_attempt_at=old,
            created_at=old,
        )
    )
    await session.flush()
    return seeded
