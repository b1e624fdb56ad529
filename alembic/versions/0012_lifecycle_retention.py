"""Data lifecycle: retention per key, file expiry, usage of purged requests.

The purge walks r0008_console's ix_requests_finished (finished_at IS NOT NULL).

Revision ID: r0012_lifecycle_retention
Revises: r0011_lifecycle_audit
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import UTCDateTime, partial

revision = "r0012_lifecycle_retention"
down_revision = "r0011_lifecycle_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("retention_days", sa.Integer()))
    op.add_column("files", sa.Column("expires_at", UTCDateTime()))
    op.create_index("ix_files_expires", "files", ["expires_at"], **partial("expires_at IS NOT NULL"))
    op.create_table(
        "usage_purged",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("owner_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("requests", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("usage_purged")
    op.drop_index("ix_files_expires", table_name="files")
    op.drop_column("files", "expires_at")
    op.drop_column("api_keys", "retention_days")
