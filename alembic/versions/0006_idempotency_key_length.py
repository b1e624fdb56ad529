"""Room for the owner scope in stored idempotency keys: "owner:key" is up to 64 + 1 + 128 characters.

A 128-character key (the documented maximum) with its scope prefix did not fit varchar(128), and the
insert failed with a 500. SQLite does not enforce varchar lengths, so only PostgreSQL changes.

Revision ID: r0006_idempotency_key_length
Revises: r0005_front_door
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "r0006_idempotency_key_length"
down_revision = "r0005_front_door"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("requests", "idempotency_key", type_=sa.String(193), existing_type=sa.String(128))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("requests", "idempotency_key", type_=sa.String(128), existing_type=sa.String(193))
