"""Batches, batch lines and files (the batch lane and the OpenAI-compatible Files + Batches API).

Revision ID: r0007_batches
Revises: r0006_idempotency_key_length
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import JSONType, UTCDateTime, partial

revision = "r0007_batches"
down_revision = "r0006_idempotency_key_length"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.String(64)),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("surface", sa.String(16), nullable=False),
        sa.Column("input_file_id", sa.String(64)),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", JSONType),
        sa.Column("errors", JSONType),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("final_counts", JSONType),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        *(
            sa.Column(name, UTCDateTime())
            for name in (
                "in_progress_at",
                "finalizing_at",
                "completed_at",
                "failed_at",
                "expired_at",
                "cancelling_at",
                "cancelled_at",
            )
        ),
    )
    op.create_index("ix_batches_owner_created", "batches", ["owner_id", "created_at"])
    op.create_index(
        "ix_batches_open", "batches", ["status"], **partial("status IN ('in_progress', 'cancelling')")
    )
    op.create_table(
        "batch_lines",
        sa.Column("batch_id", sa.Uuid(), sa.ForeignKey("batches.id"), primary_key=True),
        sa.Column("line", sa.Integer(), primary_key=True),
        sa.Column("custom_id", sa.String(256), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False, unique=True),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner_id", sa.String(64)),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(256), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("batch_id", sa.Uuid()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text()),
    )
    op.create_index("ix_files_owner_created", "files", ["owner_id", "created_at"])
    op.create_table(
        "file_parts",
        sa.Column("file_id", sa.String(64), sa.ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_requests_batch_held", "requests", ["owner_id"], **partial("priority = 'batch-held'"))
    op.create_index(
        "ix_requests_batch_lane",
        "requests",
        ["owner_id"],
        **partial("priority = 'batch' AND status IN ('queued', 'processing')"),
    )


def downgrade() -> None:
    op.drop_index("ix_requests_batch_lane", "requests")
    op.drop_index("ix_requests_batch_held", "requests")
    op.drop_table("file_parts")
    op.drop_table("files")
    op.drop_table("batch_lines")
    op.drop_table("batches")
