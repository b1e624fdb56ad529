"""For receivers: check that a webhook came from this service and is fresh.

    from service.webhooks.verify import verify_webhook
    event = verify_webhook("whsec_…", request.headers, await request.body())

Raises WebhookVerificationError when no signature matches, or the timestamp is more than
`tolerance_seconds` away from now (replays of old messages). Receivers should also remember recent
`webhook-id`s: a retried delivery carries the same id.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from service.webhooks.signing import signature


class WebhookVerificationError(Exception):
    pass


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_seconds: int = 300
) -> dict[str, Any]:
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        offered = lowered["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise WebhookVerificationError("missing or malformed webhook headers") from exc
    if abs(time.time() - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("timestamp outside the tolerance")
    expected = signature(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise WebhookVerificationError("no matching signature")
    payload: dict[str, Any] = json.loads(body)
    return payload
