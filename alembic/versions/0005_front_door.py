"""Front door: the queue-position index, webhook endpoints and their durable delivery log.

Revision ID: r0005_front_door
Revises: r0004_feedback
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from service.db.models import JSONType, UTCDateTime

revision = "r0005_front_door"
down_revision = "r0004_feedback"
branch_labels = None
depends_on = None

_PENDING = "state = 'pending'"
QUEUED_INTERACTIVE = "status = 'queued' AND batch_id IS NULL"
QUEUED_BATCH = "status = 'queued' AND batch_id IS NOT NULL"


def upgrade() -> None:
    # Queue position: queued rows of each lane by age, so "how many ahead" is an index range count.
    for name, condition in (
        ("ix_requests_queued_interactive", QUEUED_INTERACTIVE),
        ("ix_requests_queued_batch", QUEUED_BATCH),
    ):
        op.create_index(
            name,
            "requests",
            ["created_at"],
            postgresql_where=sa.text(condition),
            sqlite_where=sa.text(condition),
        )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.String(64)),
        # Set for a request's own endpoint (`webhook` on submit); NULL for an owner's default.
        sa.Column("request_id", sa.Uuid()),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", JSONType, nullable=False),
        # whsec_… secrets; NULL means the service-wide WEBHOOK_SECRETS sign for this endpoint.
        sa.Column("secret", sa.String(200)),
        sa.Column("previous_secret", sa.String(200)),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.String(200)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhook_endpoints_request", "webhook_endpoints", ["request_id"])
    op.create_index("ix_webhook_endpoints_owner", "webhook_endpoints", ["owner_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),  # the webhook-id header: msg_…
        sa.Column("endpoint_id", sa.Uuid(), sa.ForeignKey("webhook_endpoints.id"), nullable=False),
        # One delivery per endpoint and event: a re-consumed event finds its row and adds nothing.
        sa.Column("event_key", sa.String(120), nullable=False),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("request_id", sa.Uuid()),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # pending | delivered | failed
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.UniqueConstraint("endpoint_id", "event_key", name="uq_webhook_deliveries_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )
    op.create_index("ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_requests_queued_batch", table_name="requests")
    op.drop_index("ix_requests_queued_interactive", table_name="requests")
