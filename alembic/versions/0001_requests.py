"""Analysis requests.

Revision ID: r0001_requests
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import ACTIVE_ROWS, JSONType, UTCDateTime, partial

revision = "r0001_requests"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("query_text", sa.Text()),
        sa.Column("input_range", sa.String(32)),
        sa.Column("input_data", JSONType),
        sa.Column("title", sa.String(300)),
        sa.Column("description", sa.Text()),
        sa.Column("options", JSONType),
        sa.Column("result", JSONType),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_message", sa.Text()),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("llm_calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("llm_latency_ms", sa.Float()),
        sa.Column("llm_backend", sa.String(32)),
        sa.Column("llm_model", sa.String(128)),
        sa.Column("template_version", sa.Integer()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("owner_id", sa.String(64)),
        sa.Column("batch_id", sa.Uuid()),
        sa.Column("priority", sa.String(16), nullable=False, server_default="normal"),
        sa.Column("idempotency_key", sa.String(128)),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("lease_expires_at", UTCDateTime()),
    )
    op.create_index("ix_requests_active", "requests", ["status", "updated_at"], **partial(ACTIVE_ROWS))
    op.create_index(
        "ix_requests_owner_created", "requests", ["owner_id", "created_at"], **partial("owner_id IS NOT NULL")
    )
    op.create_index("ix_requests_batch", "requests", ["batch_id"], **partial("batch_id IS NOT NULL"))
    op.create_index(
        "ix_requests_idempotency",
        "requests",
        ["idempotency_key"],
        unique=True,
        **partial("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("requests")
