"""Every route of the app, classified and checked with real API keys (OWASP API1 BOLA, API5 BFLA).

The routes are enumerated from the application itself, so a route that lands later is checked the
moment it exists:
- a route open without a key must be listed in OPEN_ROUTES (anything else answers 401 without one);
- an admin route must be listed in ADMIN_ROUTES, and the list must match the routes whose
  dependencies ask for an admin key (a user key gets 403 on each);
- every other route takes any caller, and when its path names an object (`{request_id}`,
  `{endpoint_id}`, …) key B gets 404 on key A's object — the very body an unknown id gets, so there
  is no existence oracle — while A gets its own. A new kind of id needs an OBJECT_FACTORIES entry
  (how key A creates one), or this test fails and says so;
- a listing (GET without an id) shown to B never contains A's ids;
- no answer of any of these calls carries an API key, its digest, a webhook secret or a traceback.

Real PostgreSQL, broker and worker.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from service.api.deps import require_admin, require_metrics_reader
from service.callers.secrets import digest
from service.db import webhooks_repo
from service.db.models import utcnow
from tests.support import PROCESS_EXAMPLE, RunningService, bearer, issue_key, make_settings, running_service

# Open to anyone: probes, the docs and their assets, robots.txt, the OpenAPI document. Adding a
# route here is a decision: say why next to it.
OPEN_ROUTES = {
    ("GET", "/api/health"),  # the seed's health check (probes)
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/health/live"),  # liveness / readiness for orchestrators (broker reliability work)
    ("GET", "/api/v1/health/ready"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/robots.txt"),
    ("GET", "/openapi.json"),
    ("HEAD", "/openapi.json"),
    # The spreadsheet plugin: an editor downloads it, and loads its pages, before a key is typed
    # into it; it holds no secret (the service URL it pre-fills is public).
    ("GET", "/plugin/gigaoffice.plugin"),
    ("GET", "/plugin/defaults.json"),
}
# Swagger UI / ReDoc assets served offline; the console's CSS/JS; the spreadsheet plugin's files.
OPEN_MOUNTS = {"/static/docs", "/console/static", "/plugin"}

# The operator console (service/console) signs in with a key once and then uses a session cookie:
# its routes are checked by test_console_routes_are_classified_and_owner_scoped below.
CONSOLE = "/console"
CONSOLE_OPEN_ROUTES = {("GET", "/console/signin"), ("POST", "/console/signin")}
CONSOLE_ADMIN_ROUTES = {
    ("GET", "/console/keys"),
    ("POST", "/console/keys"),
    ("POST", "/console/keys/{key_id}/revoke"),
    ("POST", "/console/keys/{key_id}/limits"),
    ("POST", "/console/prompts/{category}/{language}"),
    ("POST", "/console/prompts/{category}/{language}/rollback"),
}
# Path parameters of console routes that name shared things, with the value to fill in.
CONSOLE_SHARED_PARAMETERS = {
    "key_id": "0",
    "category": "process-analysis",
    "language": "en",
    "which": "results",
}

# Admin keys only (a user key gets 403). `GET /metrics` is service-wide: admin unless METRICS_PUBLIC.
ADMIN_ROUTES = {
    ("POST", "/api/v1/prompts"),
    ("PUT", "/api/v1/prompts/{template_id}"),
    ("DELETE", "/api/v1/prompts/{template_id}"),
    ("POST", "/api/v1/keys"),
    ("GET", "/api/v1/keys"),
    ("GET", "/api/v1/keys/{key_id}"),
    ("PATCH", "/api/v1/keys/{key_id}"),
    ("DELETE", "/api/v1/keys/{key_id}"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/audit"),  # the audit log (lifecycle)
    ("GET", "/api/v1/owners/{owner_id}/export"),  # any owner's data (lifecycle)
    ("DELETE", "/api/v1/owners/{owner_id}"),  # erasure of an owner (lifecycle)
}
ADMIN_GATES = {require_admin, require_metrics_reader}

# Path parameters that name something shared by every caller rather than owned by one.
SHARED_ID_PARAMETERS = {
    "template_id",  # prompt templates: one catalogue (writes are admin-only)
    "key_id",  # keys: admin objects of the whole deployment
    "owner_id",  # owners: named by admin routes only (export and erasure)
}

# Bodies for routes that need one to get past validation (an empty object otherwise).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/requests/{request_id}/feedback"): {"rating": "good", "comment": "matrix"},
}

# Routes that name another caller's object in their BODY: the ids they need, and the body given them.
BODY_ID_ROUTES: dict[tuple[str, str], tuple[tuple[str, ...], Callable[[dict[str, str]], dict[str, Any]]]] = {
    ("POST", "/api/v1/feedback"): (
        ("request_id",),
        lambda ids: {"ai_request_id": ids["request_id"], "rating": "bad"},
    ),
    ("POST", "/v1/batches"): (
        ("file_id",),
        lambda ids: {
            "input_file_id": ids["file_id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    ),
}


@dataclass
class Callers:
    svc: RunningService
    a: dict[str, str]
    b: dict[str, str]
    admin: dict[str, str]
    owner_a: str


# --- how key A creates one object of each kind (the id goes into the path) -------------------------


async def _request(c: Callers) -> str:
    submitted = await c.svc.client.post("/api/v1/requests", json=PROCESS_EXAMPLE, headers=c.a)
    assert submitted.status_code == 202, submitted.text
    request_id: str = submitted.json()["id"]
    final = await c.svc.client.get(f"/api/v1/requests/{request_id}?wait=30", headers=c.a)
    assert final.json()["status"] == "completed", final.text
    return request_id


async def _endpoint(c: Callers) -> str:
    created = await c.svc.client.post(
        "/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=c.a
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _delivery(c: Callers, ids: dict[str, str]) -> str:
    # A delivery row as the dispatcher writes it for A's endpoint (no dispatcher runs here).
    delivery_id = f"msg_{uuid.uuid4().hex}"
    async with c.svc.sessions() as session:
        await webhooks_repo.enqueue(
            session,
            [
                {
                    "id": delivery_id,
                    "endpoint_id": uuid.UUID(ids["endpoint_id"]),
                    "event_key": f"{ids['request_id']}:completed",
                    "event_type": "request.completed",
                    "request_id": uuid.UUID(ids["request_id"]),
                    "payload": "{}",
                    "state": "failed",
                    "attempts": 1,
                    "next_attempt_at": utcnow(),
                    "created_at": utcnow(),
                }
            ],
        )
        await session.commit()
    return delivery_id


async def _file(c: Callers) -> str:
    body = {"messages": [{"role": "user", "content": "Summarise the quarter"}]}
    line = json.dumps({"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": body})
    upload = {"file": ("in.jsonl", f"{line}\n".encode())}
    uploaded = await c.svc.client.post("/v1/files", data={"purpose": "batch"}, files=upload, headers=c.a)
    assert uploaded.status_code in (200, 201), uploaded.text
    return str(uploaded.json()["id"])


async def _batch(c: Callers, ids: dict[str, str]) -> str:
    body = BODY_ID_ROUTES[("POST", "/v1/batches")][1](ids)
    created = await c.svc.client.post("/v1/batches", json=body, headers=c.a)
    assert created.status_code in (200, 201), created.text
    return str(created.json()["id"])


async def _conversation(c: Callers) -> str:
    created = await c.svc.client.post("/api/v1/conversations", json={"title": "matrix"}, headers=c.a)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


# Each kind of object: the ids its factory needs first, and the factory (in a workable order).
OBJECT_FACTORIES: dict[str, tuple[tuple[str, ...], Callable[[Callers, dict[str, str]], Awaitable[str]]]] = {
    "request_id": ((), lambda c, ids: _request(c)),
    "endpoint_id": ((), lambda c, ids: _endpoint(c)),
    "delivery_id": (("endpoint_id", "request_id"), _delivery),
    "file_id": ((), lambda c, ids: _file(c)),
    "batch_id": (("file_id",), _batch),
    "conversation_id": ((), lambda c, ids: _conversation(c)),
}


# --- the routes, from the app ----------------------------------------------------------------------


def _walk(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router
            yield from _walk(route.original_router.routes)
        else:
            yield route


def _gated(dependant: Dependant) -> bool:
    return any(d.call in ADMIN_GATES or _gated(d) for d in dependant.dependencies)


def _operations(app: Any) -> tuple[list[tuple[str, APIRoute]], set[tuple[str, str]], set[str]]:
    """(method, APIRoute) pairs, the other routes' (method, path) and the mounts' paths."""
    operations, plain, mounts = [], set(), set()
    for route in _walk(app.routes):
        if isinstance(route, APIRoute) and route.path.split("/")[1:2] == ["console"]:
            continue  # the console's own matrix (below)
        if isinstance(route, APIRoute):
            operations += [(method, route) for method in sorted(route.methods)]
        elif isinstance(route, Mount):
            mounts.add(route.path)
        elif isinstance(route, Route):
            plain |= {(method, route.path) for method in route.methods or ()}
    return operations, plain, mounts


def _parameters(path: str) -> list[str]:
    return re.findall(r"\{([^}:]+)", path)


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda m: ids.get(m.group(1), "1"), path)


_UUID_OR_HEX = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def _same_body(foreign: Any, unknown: Any, foreign_ids: set[str], unknown_ids: set[str]) -> bool:
    def masked(text: str, ids: set[str]) -> str:
        for value in sorted(ids, key=len, reverse=True):
            text = text.replace(value, "ID")
        # An id may come back in another spelling (batch_<hex> asked, its UUID echoed).
        return _UUID_OR_HEX.sub("ID", text)

    return masked(foreign.text, foreign_ids) == masked(unknown.text, unknown_ids)


def _unknown_like(value: str) -> str:
    """An id of the same shape as `value` that names nothing."""
    try:
        uuid.UUID(value)
        return str(uuid.uuid4())
    except ValueError:
        prefix = re.match(r"[A-Za-z]+[_-]", value)
        return (prefix.group(0) if prefix else "") + uuid.uuid4().hex[: max(1, len(value) - 4)]


def _classify(app: Any) -> tuple[list[tuple[str, APIRoute]], set[str]]:
    """The app's operations, after checking every route is classified; and the owned id kinds."""
    operations, plain, mounts = _operations(app)
    present = {(method, route.path) for method, route in operations}
    assert plain <= OPEN_ROUTES, f"routes outside FastAPI's router must be listed: {plain - OPEN_ROUTES}"
    assert mounts <= OPEN_MOUNTS, f"unclassified mounts: {mounts - OPEN_MOUNTS}"
    gated = {(method, route.path) for method, route in operations if _gated(route.dependant)}
    assert gated == ADMIN_ROUTES & present, (
        "ADMIN_ROUTES must list exactly the routes that ask for an admin key: gated but not listed "
        f"{gated - ADMIN_ROUTES}, listed but open to users {(ADMIN_ROUTES & present) - gated}"
    )
    owned = {p for method, route in operations if (method, route.path) not in ADMIN_ROUTES
             for p in _parameters(route.path)} - SHARED_ID_PARAMETERS  # fmt: skip
    missing = owned - OBJECT_FACTORIES.keys()
    assert not missing, f"add an OBJECT_FACTORIES entry (how key A creates one) for {missing}"
    for operation, (requires, _) in BODY_ID_ROUTES.items():
        if operation in present:
            owned |= set(requires)
    return operations, owned


async def _objects_of_a(callers: Callers, kinds: set[str]) -> dict[str, str]:
    """One object of each kind key A owns, with the objects they need made first."""
    needed = set(kinds)
    for name in reversed(list(OBJECT_FACTORIES)):
        if name in needed:
            needed |= set(OBJECT_FACTORIES[name][0])
    ids: dict[str, str] = {}
    for name, (_, factory) in OBJECT_FACTORIES.items():
        if name in needed:
            ids[name] = await factory(callers, ids)
    return ids


def _json(operation: tuple[str, str], ids: dict[str, str]) -> dict[str, Any]:
    if operation[0] not in ("POST", "PUT", "PATCH"):
        return {}
    if operation in BODY_ID_ROUTES:
        return {"json": BODY_ID_ROUTES[operation][1](ids)}
    return {"json": BODIES.get(operation, {})}


async def _check_route(callers: Callers, method: str, route: APIRoute, ids: dict[str, str]) -> list[str]:
    client, operation = callers.svc.client, (method, route.path)
    url, send = _fill(route.path, {"template_id": "1", **ids}), _json(operation, ids)
    problems = []
    # Without a key (or with a malformed one): 401 everywhere but the open routes.
    for headers in ({}, bearer("gok_not-a-key")):
        anonymous = await client.request(method, url, headers=headers, **send)
        if operation in OPEN_ROUTES:
            if anonymous.status_code in (401, 403):
                problems.append(f"{operation}: listed open but answers {anonymous.status_code}")
        elif anonymous.status_code != 401 or "www-authenticate" not in anonymous.headers:
            problems.append(f"{operation}, {headers or 'no key'}: {anonymous.status_code}, want 401")
    if operation in OPEN_ROUTES:
        return problems
    # Admin routes: a user key gets 403, before anything about the object is said.
    if operation in ADMIN_ROUTES:
        user = await client.request(method, url, headers=callers.b, **send)
        if user.status_code != 403 or user.json()["error"]["code"] != "forbidden":
            problems.append(f"{operation} with a user key: {user.status_code}, want 403")
        return problems
    if not set(_parameters(route.path)) - SHARED_ID_PARAMETERS and operation not in BODY_ID_ROUTES:
        return problems
    # Owned objects: B gets exactly what an unknown id gets; A reaches its own (after B, so that a
    # DELETE of A's leaves nothing for B to be refused).
    foreign = await client.request(method, url, headers=callers.b, **send)
    own = await client.request(method, url, headers=callers.a, **send)
    if own.status_code in (401, 403, 404, 422):
        problems.append(f"{operation}: key A on its own object: {own.status_code} {own.text[:200]}")
    unknown_ids = {name: _unknown_like(value) for name, value in ids.items()}
    unknown_url = _fill(route.path, {"template_id": "1", **unknown_ids})
    unknown = await client.request(method, unknown_url, headers=callers.b, **_json(operation, unknown_ids))
    if foreign.status_code != 404 or unknown.status_code != 404:
        problems.append(f"{operation}: key B on A's object {foreign.status_code}, on an unknown id "
                        f"{unknown.status_code}, want 404 both: {foreign.text[:200]}")  # fmt: skip
    elif not _same_body(foreign, unknown, set(ids.values()), set(unknown_ids.values())):
        problems.append(f"{operation}: B tells A's object from an unknown id: "
                        f"{foreign.text[:200]} / {unknown.text[:200]}")  # fmt: skip
    return problems


async def _check_listing(callers: Callers, route: APIRoute, ids: dict[str, str]) -> list[str]:
    """A listing (GET without an id) shown to B never carries A's ids or owner id."""
    listing = await callers.svc.client.get(route.path, headers=callers.b)
    leaked = [name for name, value in ids.items() if value in listing.text]
    if leaked or callers.owner_a in listing.text:
        return [f"GET {route.path}: B's answer shows A's {leaked or 'owner id'}"]
    return []


async def test_every_route_is_classified_and_owner_scoped(postgres_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(
        postgres_url,
        kafka_bootstrap,
        allow_anonymous=False,
        webhook_allow_private_targets=True,  # A's endpoint listens on loopback (never called here)
        # A wrong key on every route from one address is what the 401 throttle stops (429 after
        # AUTH_FAILURES_PER_MINUTE); here each route's own 401 is the point (the throttle's test:
        # tests/test_auth_failures.py).
        auth_failures_per_minute=0,
    )
    key_a = await issue_key(settings, "matrix A")
    key_b = await issue_key(settings, "matrix B")
    key_admin = await issue_key(settings, "matrix admin", "admin")
    async with running_service(settings) as svc:
        operations, owned = _classify(svc.app)
        callers = Callers(svc, bearer(key_a), bearer(key_b), bearer(key_admin), key_a.split("_")[1])
        ids = await _objects_of_a(callers, owned)
        # From here on no answer may carry key material, a webhook secret or a traceback.
        answers: list[httpx.Response] = []

        async def keep(response: httpx.Response) -> None:
            await response.aread()
            answers.append(response)

        svc.client.event_hooks["response"].append(keep)
        problems: list[str] = []
        # Deletions last: the objects they remove are needed by every other route.
        for method, route in sorted(operations, key=lambda operation: operation[0] == "DELETE"):
            problems += await _check_route(callers, method, route, ids)
            listing = method == "GET" and not _parameters(route.path)
            if listing and (method, route.path) not in OPEN_ROUTES | ADMIN_ROUTES:
                problems += await _check_listing(callers, route, ids)
        # The admin key passes the admin routes it can read without an id (the gate is not just shut).
        for method, route in operations:
            if (method, route.path) in ADMIN_ROUTES and method == "GET" and not _parameters(route.path):
                response = await svc.client.get(route.path, headers=callers.admin)
                if response.status_code != 200:
                    problems.append(f"GET {route.path} with the admin key: {response.status_code}")
        secrets = [key for key in (key_a, key_b, key_admin)]
        secrets += [digest(key) for key in secrets] + [key.split("_", 2)[2] for key in secrets]
        for response in answers:
            for secret in [*secrets, "whsec_", "Traceback", 'File "/']:
                if secret in response.text:
                    problems.append(f"{response.request.method} {response.request.url.path}: the answer "
                                    f"carries {secret[:8]}…")  # fmt: skip
        assert len(answers) > 2 * len(operations)
        assert not problems, "\n".join(problems)


async def test_metrics_scrape_needs_an_admin_key_unless_public(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    closed = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=True)
    user = bearer(await issue_key(closed, "scraper as user"))
    admin = bearer(await issue_key(closed, "scraper", "admin"))
    async with running_service(closed, with_worker=False) as svc:
        # Anonymous callers (make run) and user keys see their own figures at /api/v1/metrics only.
        assert (await svc.client.get("/metrics")).status_code == 403
        assert (await svc.client.get("/metrics", headers=user)).status_code == 403
        scraped = await svc.client.get("/metrics", headers=admin)
        assert scraped.status_code == 200 and "gigaoffice_" in scraped.text
    opened = make_settings(postgres_url, kafka_bootstrap, allow_anonymous=False, metrics_public=True)
    async with running_service(opened, with_worker=False) as svc:
        assert (await svc.client.get("/metrics")).status_code == 200
        # Only /metrics opens: everything else still wants a key.
        assert (await svc.client.get("/api/v1/metrics")).status_code == 401


# --- the operator console ------------------------------------------------------------------------


def _console_operations(app: Any) -> list[tuple[str, APIRoute]]:
    return [
        (method, route)
        for route in _walk(app.routes)
        if isinstance(route, APIRoute) and route.path.split("/")[1:2] == ["console"]
        for method in sorted(route.methods)
    ]


async def _console_client(svc: RunningService, key: str | None) -> tuple[httpx.AsyncClient, str]:
    """A browser-like client (cookies kept) signed in with `key`, and its session's CSRF token."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=svc.app), base_url="http://test")
    if key is None:
        return client, ""
    await client.get("/console/signin")
    form = {"csrf_token": client.cookies["gigaoffice_console_signin"], "api_key": key, "next": "/console"}
    signed_in = await client.post("/console/signin", data=form)
    assert signed_in.status_code == 303, signed_in.text
    page = await client.get("/console")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return client, token.group(1)


async def test_console_routes_are_classified_and_owner_scoped(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    """Every console route: without a session a page view goes to sign-in and a post gets 401; admin
    routes give a user session 403; B's session gets 404 on A's objects, the very page an unknown id
    gets; A reaches its own; B's listings never show A's ids; no page carries key material."""
    settings = make_settings(
        postgres_url, kafka_bootstrap, allow_anonymous=False, webhook_allow_private_targets=True
    )
    key_a = await issue_key(settings, "console matrix A")
    key_b = await issue_key(settings, "console matrix B")
    key_admin = await issue_key(settings, "console matrix admin", "admin")
    async with running_service(settings) as svc:
        operations = _console_operations(svc.app)
        present = {(method, route.path) for method, route in operations}
        assert present >= CONSOLE_OPEN_ROUTES | CONSOLE_ADMIN_ROUTES
        owned = {
            p for _, route in operations for p in _parameters(route.path)
        } - CONSOLE_SHARED_PARAMETERS.keys()
        missing = owned - OBJECT_FACTORIES.keys()
        assert not missing, f"add an OBJECT_FACTORIES entry (how key A creates one) for {missing}"
        callers = Callers(svc, bearer(key_a), bearer(key_b), bearer(key_admin), key_a.split("_")[1])
        ids = await _objects_of_a(callers, owned)
        (nobody, _), (a, csrf_a), (b, csrf_b), (admin, csrf_admin) = [
            await _console_client(svc, key) for key in (None, key_a, key_b, key_admin)
        ]
        problems: list[str] = []
        answers: list[httpx.Response] = []
        try:
            for method, route in sorted(operations, key=lambda operation: operation[0] == "POST"):
                operation = (method, route.path)
                if operation in CONSOLE_OPEN_ROUTES:
                    continue
                url = _fill(route.path, {**CONSOLE_SHARED_PARAMETERS, **ids})
                anonymous = await nobody.request(
                    method, url, data={"csrf_token": "x"} if method == "POST" else None
                )
                answers.append(anonymous)
                want = 303 if method == "GET" else 401
                if anonymous.status_code != want or (
                    want == 303 and not anonymous.headers["location"].startswith("/console/signin")
                ):
                    problems.append(f"{operation} without a session: {anonymous.status_code}, want {want}")
                form_b = {"data": {"csrf_token": csrf_b}} if method == "POST" else {}
                if operation in CONSOLE_ADMIN_ROUTES:
                    user = await b.request(method, url, **form_b)
                    answers.append(user)
                    if user.status_code != 403:
                        problems.append(f"{operation} with a user session: {user.status_code}, want 403")
                    admitted = await admin.request(
                        method,
                        url,
                        data={"csrf_token": csrf_admin, "name": "m"} if method == "POST" else None,
                    )
                    answers.append(admitted)
                    if admitted.status_code in (401, 403):
                        problems.append(f"{operation} with the admin session: {admitted.status_code}")
                    continue
                if not set(_parameters(route.path)) & owned:
                    if method == "GET":
                        listing = await b.get(url)
                        answers.append(listing)
                        leaked = [name for name, value in ids.items() if value in listing.text]
                        refused = listing.status_code in (401, 403, 500)
                        if refused or leaked or callers.owner_a in listing.text:
                            problems.append(f"GET {url} for B: {listing.status_code}, shows A's {leaked}")
                    continue
                foreign = await b.request(method, url, **form_b)
                own = await a.request(
                    method, url, **({"data": {"csrf_token": csrf_a}} if method == "POST" else {})
                )
                unknown_ids = {name: _unknown_like(value) for name, value in ids.items()}
                unknown = await b.request(
                    method, _fill(route.path, {**CONSOLE_SHARED_PARAMETERS, **unknown_ids}), **form_b
                )
                answers += [foreign, own, unknown]
                if own.status_code in (401, 403, 404, 422):
                    problems.append(f"{operation}: A on its own object: {own.status_code}")
                if foreign.status_code != 404 or unknown.status_code != 404:
                    problems.append(
                        f"{operation}: B on A's object {foreign.status_code}, unknown {unknown.status_code}"
                    )
                elif not _same_body(foreign, unknown, set(ids.values()), set(unknown_ids.values())):
                    problems.append(f"{operation}: B tells A's object from an unknown id")
        finally:
            for client in (nobody, a, b, admin):
                await client.aclose()
        secrets = [key_a, key_b, key_admin]
        secrets += [digest(key) for key in secrets] + [key.split("_", 2)[2] for key in secrets]
        for response in answers:
            for secret in [*secrets, "whsec_", "Traceback"]:
                if secret in response.text:
                    problems.append(
                        f"{response.request.method} {response.request.url.path} carries {secret[:8]}…"
                    )
        assert not problems, "\n".join(problems)
