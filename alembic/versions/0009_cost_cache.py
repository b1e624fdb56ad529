"""Cost (issue 17): the answer cache with its single-flight leases, cache and prompt-cache figures
on request rows, and a per-key list of allowed models.

Revision ID: r0009_cost_cache
Revises: r0008_console
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import JSONType, UTCDateTime

revision = "r0009_cost_cache"
down_revision = "r0008_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "answer_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("leader_id", sa.Uuid(), nullable=False),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("result", JSONType),
        sa.Column("category", sa.String(64)),
        sa.Column("template_version", sa.Integer()),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("llm_backend", sa.String(32)),
        sa.Column("llm_model", sa.String(128)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("requests") as table:
        table.add_column(sa.Column("cached_from", sa.Uuid()))
        table.add_column(sa.Column("cached_prompt_tokens", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("tokens_saved", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("allowed_models", JSONType))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("allowed_models")
    with op.batch_alter_table("requests") as table:
        table.drop_column("tokens_saved")
        table.drop_column("cached_prompt_tokens")
        table.drop_column("cached_from")
    op.drop_table("answer_cache")
