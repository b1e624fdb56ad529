"""The operator console: its sessions, what the LLM was sent and answered, listing indexes and daily
usage sums.

Revision ID: r0008_console
Revises: r0007_batches
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import JSONType, UTCDateTime

revision = "r0008_console"
down_revision = "r0007_batches"
branch_labels = None
depends_on = None

# Listings newest first (the keyset is (created_at, id)), whole or narrowed by one column.
# Written out, not imported: a migration must not change when the models do.
USAGE_COLUMNS = ("owner_id", "llm_model", "status", "prompt_tokens", "completion_tokens", "total_tokens")
PROMPT_STATS_COLUMNS = ("template_version", "status", "error_code", "total_tokens", "owner_id")
# On PostgreSQL two of them also carry what the usage and prompt-version aggregates read, so those
# are index-only scans.
_LISTING_INDEXES: tuple[tuple[str, list[str], tuple[str, ...]], ...] = (
    ("ix_requests_created", ["created_at", "id"], USAGE_COLUMNS),
    ("ix_requests_status_created", ["status", "created_at", "id"], ("owner_id",)),
    ("ix_requests_kind_created", ["kind", "created_at", "id"], ("owner_id",)),
    ("ix_requests_category_created", ["category", "created_at", "id"], PROMPT_STATS_COLUMNS),
)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_console_sessions_key", "console_sessions", ["key_id"])
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])
    # Usage of days whose requests are all final, summed once (the console's usage over long periods).
    op.create_table(
        "usage_days",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "usage_days_rolled",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("rolled_at", UTCDateTime(), nullable=False),
    )
    op.add_column("requests", sa.Column("transcript", JSONType))
    for name, columns, include in _LISTING_INDEXES:
        op.create_index(name, "requests", columns, postgresql_include=list(include))
    # A batch's progress counts its lines by status: index-only once the status rides along.
    op.drop_index("ix_requests_batch", table_name="requests")
    op.create_index(
        "ix_requests_batch",
        "requests",
        ["batch_id"],
        postgresql_include=["status"],
        postgresql_where=sa.text("batch_id IS NOT NULL"),
        sqlite_where=sa.text("batch_id IS NOT NULL"),
    )
    # The overview's last hour: completions per minute, latency percentiles and error classes.
    op.create_index(
        "ix_requests_finished",
        "requests",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
        sqlite_where=sa.text("finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_requests_finished", table_name="requests")
    op.drop_index("ix_requests_batch", table_name="requests")
    op.create_index(
        "ix_requests_batch",
        "requests",
        ["batch_id"],
        postgresql_where=sa.text("batch_id IS NOT NULL"),
        sqlite_where=sa.text("batch_id IS NOT NULL"),
    )
    for name, _, _ in reversed(_LISTING_INDEXES):
        op.drop_index(name, table_name="requests")
    op.drop_column("requests", "transcript")
    op.drop_table("usage_days_rolled")
    op.drop_table("usage_days")
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_index("ix_console_sessions_key", table_name="console_sessions")
    op.drop_table("console_sessions")
