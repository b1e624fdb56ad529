"""The Kafka message: a versioned pointer to a request row plus what the worker needs to route it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

SCHEMA_VERSION = 1


class RequestEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1  # SCHEMA_VERSION; bump both together
    request_id: uuid.UUID
    # A registered kind's name (service/kinds/); the worker reads the kind of the row it claims.
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    attempt: int = 1  # publication number: 1 at submit, +1 for each re-publication by the sweeper
    trace_id: str
    created_at: datetime
    published_at: datetime

    def to_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)  # in Rust, no intermediate dict

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> RequestEnvelope:
        return cls.model_validate_json(raw or b"")

    @property
    def key(self) -> bytes:
        return str(self.request_id).encode()
