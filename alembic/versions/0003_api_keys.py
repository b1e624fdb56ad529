"""API keys: the callers of the service (identity, role, limits).

Revision ID: r0003_api_keys
Revises: r0002_prompts
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import UTCDateTime

revision = "r0003_api_keys"
down_revision = "r0002_prompts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Additive only: existing requests keep their owner_id (NULL for rows from before keys existed,
    # which no key's owner matches, so they stay visible only through the admin's service-wide view).
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, server_default="user"),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("requests_per_minute", sa.Integer()),
        sa.Column("tokens_per_minute", sa.Integer()),
        sa.Column("daily_tokens", sa.Integer()),
        sa.Column("monthly_tokens", sa.Integer()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
