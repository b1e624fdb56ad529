"""The API key format: `gok_<id>_<secret>`. The id (12 hex) is public and names the key; the secret
part is 256 random bits. Only the SHA-256 digest of the whole key is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

_KEY = re.compile(r"gok_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")


def new_key() -> tuple[str, str]:
    """(key id, the full secret key). The secret is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"gok_{key_id}_{secrets.token_urlsafe(32)}"


def visible_prefix(key_id: str) -> str:
    return f"gok_{key_id}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id a well-formed key names, or None when the key is malformed."""
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None
