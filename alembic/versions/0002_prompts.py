"""Categories, versioned prompt templates and presets.

Revision ID: r0002_prompts
Revises: r0001_requests
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import JSONType, UTCDateTime

revision = "r0002_prompts"
down_revision = "r0001_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("display_name_ru", sa.String(200), nullable=False),
        sa.Column("display_name_en", sa.String(200), nullable=False),
        sa.Column("description_ru", sa.Text(), nullable=False, server_default=""),
        sa.Column("description_en", sa.Text(), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("output_schema", sa.String(32), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False, server_default="shipped"),
        sa.Column("shipped_hash", sa.String(64)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("category", sa.String(64), sa.ForeignKey("categories.name"), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("user_template", sa.Text(), nullable=False),
        sa.Column("examples", JSONType, nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("shipped_hash", sa.String(64)),
        sa.Column("note", sa.String(500)),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("category", "language", "version", name="uq_prompt_templates_version"),
    )
    op.create_index("ix_prompt_templates_current", "prompt_templates", ["category", "language", "is_current"])
    op.create_table(
        "presets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("category", sa.String(64), sa.ForeignKey("categories.name"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("origin", sa.String(16), nullable=False, server_default="shipped"),
        sa.Column("shipped_hash", sa.String(64)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("category", "name", "language", name="uq_presets_name"),
    )


def downgrade() -> None:
    op.drop_table("presets")
    op.drop_table("prompt_templates")
    op.drop_table("categories")
