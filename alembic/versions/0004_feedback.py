"""Feedback on answers, and the body hash that makes idempotency keys safe.

Revision ID: r0004_feedback
Revises: r0003_api_keys
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import UTCDateTime

revision = "r0004_feedback"
down_revision = "r0003_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("idempotency_hash", sa.String(64)))
    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("request_id", sa.Uuid(), sa.ForeignKey("requests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_id", sa.String(64)),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("text_response", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "uq_feedback_request_owner",
        "feedback",
        ["request_id", sa.text("coalesce(owner_id, '')")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_feedback_request_owner", table_name="feedback")
    op.drop_table("feedback")
    op.drop_column("requests", "idempotency_hash")
