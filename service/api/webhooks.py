"""Webhook routes: an owner's default endpoints, their delivery log, replays."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import OwnerDep, SessionDep, SettingsDep
from service.db.webhook_models import WebhookDelivery
from service.schemas.fields import ColumnText
from service.schemas.webhooks import DeliveryOut, EndpointCreated, EndpointOut, WebhookSpec
from service.usecases import webhooks as service

DeliveryId = Annotated[str, ColumnText(WebhookDelivery.id, min_length=1)]

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.post("/endpoints", status_code=201, response_model=EndpointCreated, summary="Add a default endpoint")
async def create_endpoint(
    spec: WebhookSpec, session: SessionDep, settings: SettingsDep, owner_id: OwnerDep
) -> EndpointCreated:
    """Every request of the caller's that ends sends the chosen events here, signed with the
    returned secret (shown only now)."""
    endpoint = await service.create_endpoint(session, settings, spec, owner_id)
    return EndpointCreated.model_validate(
        {**EndpointOut.model_validate(endpoint, from_attributes=True).model_dump(), "secret": endpoint.secret}
    )


@router.get("/endpoints", response_model=list[EndpointOut], summary="The caller's default endpoints")
async def list_endpoints(session: SessionDep, owner_id: OwnerDep) -> list[EndpointOut]:
    return [
        EndpointOut.model_validate(e, from_attributes=True)
        for e in await service.list_endpoints(session, owner_id)
    ]


@router.delete(
    "/endpoints/{endpoint_id}",
    response_model=EndpointOut,
    summary="Stop an endpoint (kept, disabled, with its delivery log)",
)
async def delete_endpoint(endpoint_id: uuid.UUID, session: SessionDep, owner_id: OwnerDep) -> EndpointOut:
    return EndpointOut.model_validate(
        await service.delete_endpoint(session, endpoint_id, owner_id), from_attributes=True
    )


@router.get(
    "/endpoints/{endpoint_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="Delivery log of an endpoint",
)
async def deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    owner_id: OwnerDep,
    limit: int = Query(100, ge=1, le=1000),
) -> list[DeliveryOut]:
    rows = await service.delivery_log(session, endpoint_id, owner_id, limit)
    return [DeliveryOut.model_validate(row, from_attributes=True) for row in rows]


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery again",
)
async def replay(delivery_id: DeliveryId, session: SessionDep, owner_id: OwnerDep) -> DeliveryOut:
    return DeliveryOut.model_validate(
        await service.replay(session, delivery_id, owner_id), from_attributes=True
    )
