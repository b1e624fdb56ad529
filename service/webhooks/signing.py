"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

`webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` over
`{webhook-id}.{webhook-timestamp}.{body}`, one per secret in use: while a secret is being rotated,
both the new and the previous one sign, so receivers holding either keep verifying.
Secrets are `whsec_` + the base64 of the key bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_…` secret (ValueError when it is not one)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(secret, msg_id, timestamp, body) for secret in secrets),
        "content-type": "application/json",
    }
