"""Sign-in, sessions and CSRF of the operator console.

- Signing in takes an API key (in a POST body, never a URL) and starts a server-side session: a row
  in `console_sessions` keyed by the SHA-256 of a random token, so every API process knows it and a
  database read yields no usable cookie. The cookie holds the token: HttpOnly, SameSite=Strict,
  Secure when the browser came over https (directly or through a proxy's X-Forwarded-Proto).
- A session ends CONSOLE_SESSION_MINUTES after sign-in, at sign-out, and when its key is revoked.
- Every form carries the session's CSRF token; every POST is refused without it. The sign-in form,
  which has no session yet, uses a double-submit token (cookie + field).
- Failed sign-ins are counted per client address (the `limits` library, in Redis when REDIS_URL is
  set, as for the API's rate limits): over CONSOLE_SIGNIN_FAILURES_PER_MINUTE the form answers 429.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from service.callers.model import Caller, caller_of
from service.config import Settings
from service.db import console_repo
from service.db.console_models import ConsoleSession
from service.db.key_models import ApiKey
from service.db.models import utcnow
from service.errors import AppError, Forbidden, TooManyRequests
from service.runtime import Runtime

SESSION_COOKIE = "gigaoffice_console"
SIGNIN_COOKIE = "gigaoffice_console_signin"
CSRF_FIELD = "csrf_token"
USER_SCOPE_KEY = "gigaoffice.console_user"


class SignInRequired(AppError):
    """No live session: pages redirect to the sign-in form, form posts answer 401."""

    status_code = 401
    code = "signin_required"


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    caller: Caller
    key: ApiKey
    csrf_token: str
    token_hash: str

    @property
    def is_admin(self) -> bool:
        return self.caller.is_admin

    @property
    def owner_scope(self) -> str | None:
        """Whose rows this user sees: every owner's for an admin (None), else the key's own."""
        return None if self.is_admin else self.caller.owner_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# --- sessions ------------------------------------------------------------------------------------


async def start_session(
    request: Request, response: Response, session: AsyncSession, settings: Settings, caller: Caller
) -> None:
    """A new session row in the route's unit of work, and its cookie on the response."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    await console_repo.purge_expired_sessions(session, now)
    await console_repo.add_session(
        session,
        ConsoleSession(
            token_hash=_digest(token),
            key_id=caller.key_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(minutes=settings.console_session_minutes),
        ),
    )
    set_cookie(request, response, SESSION_COOKIE, token, settings.console_session_minutes * 60)
    response.delete_cookie(SIGNIN_COOKIE, path="/console")
    logger.info("console session started for key {} from {}", caller.key_id, client_address(request))


async def end_session(response: Response, session: AsyncSession, user: ConsoleUser) -> None:
    await console_repo.delete_session(session, user.token_hash)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    logger.info("console session of key {} signed out", user.caller.key_id)


async def current_user(request: Request) -> ConsoleUser:
    """The signed-in user of this request (dependency of every page but sign-in)."""
    cached: ConsoleUser | None = request.scope.get(USER_SCOPE_KEY)
    if cached is not None:
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired("Sign in to use the console.")
    token_hash = _digest(token)
    async with request.app.state.runtime.sessions() as session:  # a read: nothing to commit
        found = await console_repo.live_session(session, token_hash, utcnow())
    if found is None:
        raise SignInRequired("The console session has ended; sign in again.")
    row, key = found
    user = ConsoleUser(caller_of(key), key, row.csrf_token, token_hash)
    request.scope[USER_SCOPE_KEY] = user
    return user


async def admin_user(request: Request) -> ConsoleUser:
    user = await current_user(request)
    if not user.is_admin:
        raise Forbidden("This page needs an admin key.")
    return user


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matched the session's (403 otherwise)."""
    user = await current_user(request)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, user.csrf_token):
        logger.warning("console form without a valid CSRF token refused ({})", request.url.path)
        raise Forbidden("The form's security token is missing or stale; reload the page.", code="csrf_failed")
    return form


# --- the sign-in form ----------------------------------------------------------------------------


def signin_token(request: Request) -> str:
    """The double-submit token of the sign-in form: the cookie's, or a new one."""
    existing = request.cookies.get(SIGNIN_COOKIE)
    return existing if existing and len(existing) <= 64 else secrets.token_urlsafe(24)


def check_signin_token(request: Request, form: FormData) -> None:
    cookie = request.cookies.get(SIGNIN_COOKIE) or ""
    sent = form.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent, cookie):
        raise Forbidden("The sign-in form expired; reload the page.", code="csrf_failed")


class SignInThrottle:
    """Failed sign-ins per client address and minute: in Redis through the runtime's client when
    REDIS_URL is set (every API process counts together), in process memory otherwise."""

    def __init__(self, rt: Runtime) -> None:
        settings = rt.settings
        storage: Storage = MemoryStorage()
        if rt.redis is not None and settings.redis_url:
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                implementation="redispy",
                key_prefix=f"{settings.rate_limit_key_prefix}-console",
                connection_pool=rt.redis.connection_pool,  # type: ignore[arg-type]
            )
        self._limiter = FixedWindowRateLimiter(storage)
        self._item = RateLimitItemPerMinute(settings.console_signin_failures_per_minute)

    async def check(self, address: str) -> None:
        try:
            allowed = await self._limiter.test(self._item, "signin", address)
        except Exception as exc:  # the store failed, not the caller; the key check still holds
            logger.warning("console sign-in throttle unavailable: {}", type(exc).__name__)
            return
        if not allowed:
            raise TooManyRequests(
                "Too many failed sign-ins from this address; wait a minute.",
                headers={"Retry-After": "60"},
            )

    async def failed(self, address: str) -> None:
        try:
            await self._limiter.hit(self._item, "signin", address)
        except Exception as exc:
            logger.warning("console sign-in throttle unavailable: {}", type(exc).__name__)
