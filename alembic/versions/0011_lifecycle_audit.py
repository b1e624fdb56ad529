"""Data lifecycle: the audit log.

Revision ID: r0011_lifecycle_audit
Revises: r0009_cost_cache
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.audit_models import AuditId
from service.db.models import JSONType, UTCDateTime

revision = "r0011_lifecycle_audit"
down_revision = "r0010_conversations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", AuditId, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64)),
        sa.Column("before", JSONType),
        sa.Column("after", JSONType),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id", "id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])


def downgrade() -> None:
    op.drop_table("audit_log")
