"""Wrong keys: unknown well-formed keys are remembered (no database read per retry), and an address
that keeps sending wrong keys gets 429 with Retry-After before anything is looked up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from service.callers.auth import Authenticator
from service.db.session import create_engine, create_session_factory
from service.errors import TooManyRequests, Unauthorized
from tests.support import bearer, issue_key, make_settings, running_service

UNKNOWN = "gok_0123456789ab_" + "A" * 43


class Lookups:
    """Counts the statements that read the api_keys table."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM api_keys" in statement:
            self.count += 1


@pytest.fixture
async def counted(postgres_url: str, kafka_bootstrap: str) -> AsyncIterator[tuple[Any, Lookups]]:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, auth_failures_per_minute=3)
    engine = create_engine(settings)
    lookups = Lookups()
    event.listen(engine.sync_engine, "before_cursor_execute", lookups)
    try:
        yield (settings, create_session_factory(engine)), lookups
    finally:
        await engine.dispose()


async def test_an_unknown_key_is_looked_up_once_then_remembered(counted: tuple[Any, Lookups]) -> None:
    (settings, sessions), lookups = counted
    authenticator = Authenticator(settings.model_copy(update={"auth_failures_per_minute": 0}), sessions)
    for _ in range(5):
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(f"Bearer {UNKNOWN}", None, "10.0.0.1")
    assert lookups.count == 1


async def test_an_address_sending_wrong_keys_gets_429_before_any_lookup(counted: tuple[Any, Lookups]) -> None:
    (settings, sessions), lookups = counted
    good = await issue_key(settings, "neighbour")
    authenticator = Authenticator(settings, sessions)
    await authenticator.authenticate(f"Bearer {good}", None, "10.0.0.2")  # known good, now cached
    for number in range(3):
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(f"Bearer gok_{number:012d}_" + "B" * 43, None, "10.0.0.2")
    before = lookups.count
    with pytest.raises(TooManyRequests) as refused:
        await authenticator.authenticate(f"Bearer gok_999999999999_{'C' * 43}", None, "10.0.0.2")
    assert refused.value.headers is not None and 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert refused.value.code == "too_many_auth_failures"
    assert lookups.count == before  # refused without reading the table
    # The good key at that address still works (from the cache); other addresses are not affected.
    assert (await authenticator.authenticate(f"Bearer {good}", None, "10.0.0.2")).key_id is not None
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(f"Bearer {UNKNOWN}", None, "10.0.0.3")


async def test_missing_keys_do_not_count(counted: tuple[Any, Lookups]) -> None:
    (settings, sessions), _lookups = counted
    authenticator = Authenticator(settings, sessions)
    for _ in range(10):
        with pytest.raises(Unauthorized):
            await authenticator.authenticate(None, None, "10.0.0.4")


async def test_the_429_reaches_the_client_with_retry_after(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, auth_failures_per_minute=2)
    async with running_service(settings, with_worker=False) as svc:
        statuses = [
            (await svc.client.get("/api/v1/categories", headers=bearer(UNKNOWN))).status_code
            for _ in range(3)
        ]
        refused = await svc.client.get("/v1/models", headers=bearer(UNKNOWN))
    assert statuses == [401, 401, 429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "too_many_auth_failures"
