"""Callers: API keys, 401/403, owner isolation (BOLA), anonymous access, the keys CLI and API.

Real PostgreSQL, broker and worker; every caller uses its own key.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.api.deps import require_admin
from service.callers.auth import check_anonymous_exposure
from service.callers.secrets import digest
from service.errors import ConfigurationError
from service.keys_cli import run_keys
from service.usecases.keys import revoke_key
from tests.support import (
    PROCESS_EXAMPLE,
    SEED_EXAMPLE,
    bearer,
    captured_logs,
    issue_key,
    make_settings,
    running_service,
)

SUBMIT_BODY = {"kind": "spreadsheet", **SEED_EXAMPLE}


def keyed_settings(postgres_url: str, kafka_bootstrap: str, **overrides: Any) -> Any:
    return make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, **overrides)


async def test_another_owners_request_is_404_like_an_unknown_one(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = keyed_settings(postgres_url, kafka_bootstrap)
    key_a, key_b = await issue_key(settings, "A"), await issue_key(settings, "B")
    a, b = bearer(key_a), bearer(key_b)
    async with running_service(settings) as svc:
        ids = {}
        for name, body, path in (
            ("sheet", SEED_EXAMPLE, "/api/ai/process"),
            ("process", PROCESS_EXAMPLE, "/api/v1/requests"),
        ):
            submitted = await svc.client.post(path, json=body, headers=a)
            assert submitted.status_code in (200, 202), submitted.text
            ids[name] = submitted.json().get("id") or submitted.json()["request_id"]
        for request_id in ids.values():
            for _ in range(600):
                status = (await svc.client.get(f"/api/v1/requests/{request_id}", headers=a)).json()
                if status["status"] in ("completed", "failed"):
                    break
                await svc.client.get(f"/api/v1/requests/{request_id}?wait=0.1", headers=a)
            assert status["status"] == "completed", status

        sheet, process = ids["sheet"], ids["process"]
        routes = [
            ("GET", "/api/v1/requests/{id}", sheet),
            ("GET", "/api/v1/requests/{id}?wait=0.2", sheet),
            ("GET", "/api/v1/requests/{id}/result", sheet),
            ("GET", "/api/v1/requests/{id}/report", process),
            ("POST", "/api/v1/requests/{id}/cancel", sheet),
            ("GET", "/api/ai/status/{id}", sheet),
            ("GET", "/api/ai/result/{id}", sheet),
        ]
        for method, template, request_id in routes:
            own = await svc.client.request(method, template.format(id=request_id), headers=a)
            # The owner sees it (cancel of a finished request: 409, which also says "it exists").
            assert own.status_code == (409 if "cancel" in template else 200), (template, own.text)
            foreign = await svc.client.request(method, template.format(id=request_id), headers=b)
            unknown_id = str(uuid.uuid4())
            unknown = await svc.client.request(method, template.format(id=unknown_id), headers=b)
            assert foreign.status_code == unknown.status_code == 404, (template, foreign.text)
            assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
            assert foreign.text.replace(request_id, "X") == unknown.text.replace(unknown_id, "X"), template

        # Idempotency keys are per owner: the same key from B is a new request, not A's.
        body = {"kind": "spreadsheet", **SEED_EXAMPLE, "idempotency_key": "same-key"}
        first_a = (await svc.client.post("/api/v1/requests", json=body, headers=a)).json()["id"]
        again_a = await svc.client.post("/api/v1/requests", json=body, headers=a)
        first_b = await svc.client.post("/api/v1/requests", json=body, headers=b)
        assert again_a.status_code == 200 and again_a.json()["id"] == first_a
        assert first_b.status_code == 202 and first_b.json()["id"] != first_a

        # Metrics and usage show each caller its own figures only.
        metrics_a = (await svc.client.get("/api/v1/metrics", headers=a)).json()
        metrics_b = (await svc.client.get("/api/metrics", headers=b)).json()
        assert metrics_a["requests"]["total"] == 3
        assert metrics_b["requests"]["total"] == 1 and metrics_b["success"] is True
        assert (await svc.client.get("/api/v1/metrics?owner=*", headers=b)).status_code == 403
        admin = bearer(await issue_key(settings, "admin", "admin"))
        everyone = (await svc.client.get("/api/v1/metrics?owner=*", headers=admin)).json()
        assert everyone["requests"]["total"] >= 4
        a_id = key_a.split("_")[1]
        assert (await svc.client.get(f"/api/metrics?owner={a_id}", headers=admin)).json()["requests"][
            "total"
        ] == 3


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router
            yield from _api_routes(route.original_router.routes)


def _needs_admin(dependant: Dependant) -> bool:
    return any(d.call is require_admin or _needs_admin(d) for d in dependant.dependencies)


async def test_user_keys_get_403_on_every_admin_route(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = keyed_settings(postgres_url, kafka_bootstrap)
    user = bearer(await issue_key(settings, "user"))
    async with running_service(settings, with_worker=False) as svc:
        admin_routes = [r for r in _api_routes(svc.app.routes) if _needs_admin(r.dependant)]
        found = {(m, r.path) for r in admin_routes for m in r.methods}
        # The set is derived from the code, so a new admin route is checked too; these must be in it.
        assert {("POST", "/api/v1/prompts"), ("PUT", "/api/v1/prompts/{template_id}"),
                ("DELETE", "/api/v1/prompts/{template_id}"), ("POST", "/api/v1/keys"),
                ("GET", "/api/v1/keys"), ("PATCH", "/api/v1/keys/{key_id}"),
                ("DELETE", "/api/v1/keys/{key_id}")} <= found  # fmt: skip
        for method, path in sorted(found):
            url = re.sub(r"\{[^}]+\}", "1", path)
            response = await svc.client.request(method, url, headers=user, json={})
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"
            anonymous = await svc.client.request(method, url, json={})
            assert anonymous.status_code == 401, (method, path)


async def test_401_for_missing_malformed_unknown_and_revoked_keys(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    # No cache: a revocation made elsewhere (here: straight in the database) counts at once.
    settings = keyed_settings(postgres_url, kafka_bootstrap, api_key_cache_seconds=0)
    key = await issue_key(settings, "soon revoked")
    unknown = "gok_0123456789ab_" + "A" * 43
    with captured_logs() as logs:
        async with running_service(settings, with_worker=False) as svc:
            assert (await svc.client.get("/api/v1/categories", headers=bearer(key))).status_code == 200
            assert (await svc.client.get("/api/v1/categories", headers={"X-API-Key": key})).status_code == 200
            cases = {
                "missing": {},
                "malformed": bearer("not-a-key"),
                "empty bearer": {"Authorization": "Bearer "},
                "basic": {"Authorization": f"Basic {key}"},
                "unknown": bearer(unknown),
                "unknown x-api-key": {"X-API-Key": unknown},
            }
            for name, headers in cases.items():
                for path in ("/api/v1/categories", "/api/v1/requests", "/api/ai/status/" + str(uuid.uuid4())):
                    method = "POST" if path == "/api/v1/requests" else "GET"
                    response = await svc.client.request(method, path, headers=headers, json=SEED_EXAMPLE)
                    assert response.status_code == 401, (name, path, response.text)
                    assert response.headers["www-authenticate"].startswith("Bearer"), name
                    assert response.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
            async with svc.sessions() as session:
                await revoke_key(session, key.split("_")[1])
                await session.commit()
            revoked = await svc.client.get("/api/v1/categories", headers=bearer(key))
            assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"
            assert (await svc.client.get("/api/health")).status_code == 200  # probes stay open
    text = "\n".join(logs)
    for secret in (key, unknown, digest(key), key.split("_", 2)[2]):
        assert secret not in text
    assert "Bearer" not in text and "authorization" not in text.lower()


async def test_keys_api_create_use_update_revoke(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = keyed_settings(postgres_url, kafka_bootstrap)
    admin = bearer(await issue_key(settings, "root", "admin"))
    async with running_service(settings, with_worker=False) as svc:
        created = await svc.client.post(
            "/api/v1/keys", json={"name": "plugin", "daily_tokens": 5000}, headers=admin
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["secret"]
        assert body["role"] == "user" and body["daily_tokens"] == 5000 and body["owner_id"] == body["id"]
        assert secret.startswith(body["prefix"]) and "key_hash" not in body
        assert (await svc.client.get("/api/v1/categories", headers=bearer(secret))).status_code == 200

        listed = (await svc.client.get("/api/v1/keys", headers=admin)).json()
        assert body["id"] in {k["id"] for k in listed}
        assert all("secret" not in k and "key_hash" not in k for k in listed)

        patched = await svc.client.patch(
            f"/api/v1/keys/{body['id']}", json={"requests_per_minute": 7, "daily_tokens": None}, headers=admin
        )
        assert patched.status_code == 200 and patched.json()["requests_per_minute"] == 7
        assert patched.json()["daily_tokens"] is None
        bad = await svc.client.patch(f"/api/v1/keys/{body['id']}", json={"role": "root"}, headers=admin)
        assert bad.status_code == 422
        submitted = await svc.client.post("/api/v1/requests", json={"kind": "spreadsheet", **SEED_EXAMPLE},
                                          headers=bearer(secret))  # fmt: skip
        assert submitted.headers["ratelimit-limit"] == "7"  # the new figure, not the cached one

        revoked = await svc.client.delete(f"/api/v1/keys/{body['id']}", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        # Revoked in this process: refused at once, cache or not.
        assert (await svc.client.get("/api/v1/categories", headers=bearer(secret))).status_code == 401
        assert (await svc.client.get("/api/v1/keys/nope", headers=admin)).status_code == 404

        # last_used_at is written in batches, not per request.
        await svc.client.get("/api/v1/categories", headers=admin)
        await svc.app.state.runtime.authenticator.flush_last_used()
        root = [
            k for k in (await svc.client.get("/api/v1/keys", headers=admin)).json() if k["name"] == "root"
        ]
        assert root and root[0]["last_used_at"]


async def test_anonymous_access_only_when_enabled(postgres_url: str, kafka_bootstrap: str) -> None:
    closed = keyed_settings(postgres_url, kafka_bootstrap)
    async with running_service(closed, with_worker=False) as svc:
        assert (await svc.client.post("/api/ai/process", json=SEED_EXAMPLE)).status_code == 401
    opened = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=True, anonymous_requests_per_minute=60
    )
    async with running_service(opened) as svc:
        # The seed document's curl example, as an existing plugin sends it.
        response = await svc.client.post("/api/ai/process", json=SEED_EXAMPLE)
        assert response.status_code == 200 and response.json()["success"] is True, response.text
        assert int(response.headers["ratelimit-limit"]) == opened.anonymous_requests_per_minute
        final = await svc.wait_final(response.json()["request_id"])
        assert final["status"] == "completed"
        # Anonymous callers are users: no prompt writes, no other owners' figures.
        write = await svc.client.post("/api/v1/prompts", json={})
        assert write.status_code == 403
        assert (await svc.client.get("/api/v1/usage?owner=*")).status_code == 403
        usage = (await svc.client.get("/api/v1/usage")).json()
        assert usage["owner"] == "anonymous" and usage["day"]["requests"]["total"] >= 1


def test_anonymous_access_is_refused_on_a_public_address() -> None:
    base = {"allow_anonymous": True}
    with pytest.raises(ConfigurationError, match="not a loopback"):
        check_anonymous_exposure(make_settings("sqlite+aiosqlite://", "x", host="0.0.0.0", **base))
    check_anonymous_exposure(make_settings("sqlite+aiosqlite://", "x", host="::1", **base))
    check_anonymous_exposure(
        make_settings("sqlite+aiosqlite://", "x", host="0.0.0.0", allow_anonymous_on_public_host=True, **base)
    )
    check_anonymous_exposure(make_settings("sqlite+aiosqlite://", "x", host="0.0.0.0", allow_anonymous=False))


def test_keys_cli_shows_the_secret_once(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(sqlite_url, "x")
    assert run_keys(settings, ["create", "--name", "first admin", "--role", "admin", "--rpm", "30"]) == 0
    out = capsys.readouterr().out
    secret = re.search(r"gok_[0-9a-f]{12}_\S{43}", out)
    assert secret and "rpm=30" in out
    key_id = secret.group(0).split("_")[1]
    assert run_keys(settings, ["list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and secret.group(0) not in listing
    assert run_keys(settings, ["update", key_id, "--daily-tokens", "100", "--rpm", "-1"]) == 0
    updated = capsys.readouterr().out
    assert "daily-tokens=100" in updated and "rpm=" not in updated
    assert run_keys(settings, ["revoke", key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert run_keys(settings, ["list"]) == 0 and key_id not in capsys.readouterr().out
    assert run_keys(settings, ["revoke", "000000000000"]) == 1


async def test_status_poll_reads_wait_by_hand_and_documents_it(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = keyed_settings(postgres_url, kafka_bootstrap)
    key = await issue_key(settings, "poller")
    async with running_service(settings, with_worker=False, api_key=key) as svc:
        request_id = (await svc.submit(SUBMIT_BODY)).json()["id"]
        for bad in ("abc", "-1", "nan", "inf"):
            response = await svc.client.get(f"/api/v1/requests/{request_id}?wait={bad}")
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["error"]["details"][0]["loc"] == "query.wait"
        waited = await svc.client.get(f"/api/v1/requests/{request_id}?wait=0.2")
        assert waited.status_code == 200 and waited.json()["status"] == "queued"
        schema = (await svc.client.get("/openapi.json")).json()
        parameters = schema["paths"]["/api/v1/requests/{request_id}"]["get"]["parameters"]
        assert {p["name"] for p in parameters} == {"request_id", "wait"}
