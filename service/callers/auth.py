"""Authentication of API keys without a database round trip per request.

A verified key (and an unknown or revoked one) is remembered for API_KEY_CACHE_SECONDS, keyed by the
SHA-256 digest of the presented key — the key itself is never kept, logged or compared. A cache miss
reads the key's row once and compares digests in constant time. Revocation therefore takes effect
at once in the process that revoked the key and within the cache time everywhere else. A client
address that collects AUTH_FAILURES_PER_MINUTE 401s for wrong keys gets 429 for the rest of the
minute, without a lookup (service/callers/auth_failures.py): guessing keys, or hammering the
database with them, stops there.

`last_used_at` is not written per request: used key ids are collected in memory and written by one
batched UPDATE every API_KEY_LAST_USED_FLUSH_SECONDS (and on shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import time

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.callers.auth_failures import FailedAuthentications
from service.callers.model import Caller, anonymous_caller, caller_of
from service.callers.secrets import digest, key_id_of
from service.config import Settings
from service.db import api_keys_repo as repo
from service.db.models import utcnow
from service.db.unit_of_work import transaction
from service.errors import ConfigurationError, Unauthorized

_INVALID_TOKEN = {"WWW-Authenticate": 'Bearer realm="gigaoffice", error="invalid_token"'}
_CACHE_LIMIT = 10_000


class Authenticator:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._ttl = settings.api_key_cache_seconds
        # digest of a presented key -> (monotonic expiry, the caller or None for unknown/revoked)
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._used: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._failures = FailedAuthentications(settings.auth_failures_per_minute)

    async def authenticate(
        self, authorization: str | None, api_key: str | None, client: str | None
    ) -> Caller:
        token = _presented_key(authorization, api_key)
        if token is None and self._settings.allow_anonymous:
            return anonymous_caller(self._settings, client)
        try:
            caller = await self._verify(token, client)
        except Unauthorized:
            # Wrong keys count, not missing ones: a key-less call is a misconfiguration, not a
            # guess, and costs no lookup.
            if token is not None:
                self._failures.failed(client)
            raise
        if caller.key_id is not None:
            self._used.add(caller.key_id)
        return caller

    async def _verify(self, token: str | None, client: str | None) -> Caller:
        hashed = digest(token) if token else None
        now = time.monotonic()
        cached = self._cache.get(hashed) if hashed else None
        if cached is not None and cached[0] > now and cached[1] is not None:
            return cached[1]  # a known good key: never held up by others' failures at its address
        # Past its share of 401s, an address gets 429 before anything is looked up.
        self._failures.check(client)
        if token is None:
            raise Unauthorized(
                "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
                code="missing_api_key",
            )
        key_id = key_id_of(token)
        if key_id is None or hashed is None:
            raise Unauthorized("The API key is malformed.", code="invalid_api_key", headers=_INVALID_TOKEN)
        if cached is not None and cached[0] > now:
            caller = cached[1]  # unknown or revoked, remembered: no database read
        else:
            caller = await self._load(key_id, hashed)
            self._remember(hashed, caller, now)
        if caller is None:
            # Unknown and revoked keys answer alike: the response is no oracle for key ids.
            raise Unauthorized(
                "The API key is unknown or revoked.", code="invalid_api_key", headers=_INVALID_TOKEN
            )
        return caller

    async def _load(self, key_id: str, hashed: str) -> Caller | None:
        async with self._sessions() as session:
            row = await repo.get_key(session, key_id)
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, hashed):
            return None
        return caller_of(row)

    def _remember(self, hashed: str, caller: Caller | None, now: float) -> None:
        if self._ttl <= 0:
            return
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
        self._cache[hashed] = (now + self._ttl, caller)

    def forget(self, key_id: str) -> None:
        """A key changed (revoked, new limits or role): the next request reads it again."""
        self._cache = {k: v for k, v in self._cache.items() if v[1] is None or v[1].key_id != key_id}

    # --- last_used_at, batched ----------------------------------------------------------------

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_periodically())

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush_last_used()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._settings.api_key_last_used_flush_seconds)
            await self.flush_last_used()

    async def flush_last_used(self) -> None:
        used, self._used = self._used, set()
        if not used:
            return
        try:
            async with transaction(self._sessions) as session:  # a unit of work of its own
                await repo.touch_last_used(session, used, utcnow())
        except Exception as exc:  # bookkeeping only: never let it take the process down
            logger.warning("could not record last use of {} API keys: {}", len(used), type(exc).__name__)


def _presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key`; "" when a header is there but
    holds no usable key (malformed), None when neither header is there."""
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    if api_key is not None:
        return api_key.strip()
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_anonymous_exposure(settings: Settings) -> None:
    """Anonymous access is for a service on loopback (the embedded default); on any other address it
    needs ALLOW_ANONYMOUS_ON_PUBLIC_HOST as well, or start-up is refused."""
    if not settings.allow_anonymous:
        return
    if is_loopback(settings.host):
        logger.info("anonymous access is on (listening on loopback {})", settings.host)
        return
    if not settings.allow_anonymous_on_public_host:
        raise ConfigurationError(
            f"ALLOW_ANONYMOUS is set but HOST={settings.host} is not a loopback address: refusing to "
            "start. Use API keys, or set ALLOW_ANONYMOUS_ON_PUBLIC_HOST=true to accept the risk."
        )
    logger.warning(
        "anonymous access is on while listening on {} (ALLOW_ANONYMOUS_ON_PUBLIC_HOST): anyone who "
        "reaches this address can submit requests",
        settings.host,
    )
