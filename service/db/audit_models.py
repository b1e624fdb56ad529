"""ORM model of the audit log: who changed what, when, with the state before and after.

Append-only by construction: service/db/audit_repo.py has no update or delete (a test checks it),
and the retention purge and the owner erasure never touch this table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, JSONType, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(AuditId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The key id of the caller, "cli" for an operator's command, "system" for a background job.
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))  # "key.created", "owner.erased", ...
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[Any | None] = mapped_column(JSONType)
    after: Mapped[Any | None] = mapped_column(JSONType)

    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id", "id"),
        Index("ix_audit_log_actor", "actor", "id"),
    )
