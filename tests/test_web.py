"""What every response shares (issue 8): security headers, robots.txt, CORS, docs served offline."""

from __future__ import annotations

import re

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from tests.support import SEED_EXAMPLE, make_settings, running_service

SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}
ORIGIN = "https://office.example.org"


def _client(settings: Settings) -> httpx.AsyncClient:
    """The app without its lifespan: docs, robots and CORS preflights need no database."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://test")


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[arg-type]


def _has_security_headers(response: httpx.Response) -> bool:
    return all(response.headers.get(name) == value for name, value in SECURITY.items())


async def test_security_headers_on_api_responses_of_every_kind(
    postgres_url: str, kafka_bootstrap: str
) -> None:
    settings = make_settings(postgres_url, kafka_bootstrap, cors_allow_origins=[ORIGIN])
    async with running_service(settings, with_worker=False) as svc:
        responses = [
            await svc.client.post("/api/ai/process", json=SEED_EXAMPLE),
            await svc.client.post("/api/v1/requests", json={"kind": "spreadsheet", **SEED_EXAMPLE}),
            await svc.client.get("/api/v1/requests/not-a-uuid"),  # 422
            await svc.client.get("/api/v1/requests/00000000-0000-0000-0000-000000000000"),  # 404
            await svc.client.get("/api/health"),
            await svc.client.get("/no/such/path"),
        ]
    for response in responses:
        assert _has_security_headers(response), (response.request.url, response.headers)
        # One of each, never doubled by a route that set its own.
        assert response.headers.get_list("x-frame-options") == ["DENY"]


async def test_robots_txt_disallows_everything() -> None:
    async with _client(_settings()) as client:
        response = await client.get("/robots.txt")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert response.text.splitlines() == ["User-agent: *", "Disallow: /"]
    assert _has_security_headers(response)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_their_assets_from_the_service(page: str) -> None:
    async with _client(_settings()) as client:
        html = await client.get(page)
        assert html.status_code == 200 and _has_security_headers(html)
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        assert assets, html.text
        # Nothing from another host: offline deployments have no CDN.
        assert all(url.startswith("/") for url in assets), assets
        assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text
        for url in assets:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url  # the real bundle, not a placeholder
            assert _has_security_headers(asset)
        openapi = await client.get("/openapi.json")
        assert openapi.status_code == 200 and "/api/ai/process" in openapi.json()["paths"]
        assert "/docs" not in openapi.json()["paths"] and "/robots.txt" not in openapi.json()["paths"]


async def test_swagger_oauth2_redirect_page() -> None:
    async with _client(_settings()) as client:
        response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and "oauth2" in response.text.lower()


async def test_cors_preflight_for_configured_origins_on_every_path() -> None:
    settings = _settings(cors_allow_origins=f"{ORIGIN}, https://r7.example.org/")
    assert settings.cors_allow_origins == [ORIGIN, "https://r7.example.org"]
    async with _client(settings) as client:
        for path in ("/api/ai/process", "/api/v1/requests", "/v1/chat/completions"):
            allowed = await client.options(
                path,
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type, idempotency-key, authorization",
                },
            )
            assert 200 <= allowed.status_code < 300, (path, allowed.text)
            assert allowed.headers["access-control-allow-origin"] == ORIGIN
            assert "idempotency-key" in allowed.headers["access-control-allow-headers"].lower()
            assert "access-control-allow-credentials" not in allowed.headers
            assert _has_security_headers(allowed)
        refused = await client.options(
            "/api/ai/process",
            headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in refused.headers
        simple = await client.get("/robots.txt", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN


async def test_no_cors_headers_unless_configured() -> None:
    async with _client(_settings()) as client:
        response = await client.get("/robots.txt", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


def test_credentials_are_never_allowed_with_a_wildcard_origin() -> None:
    with pytest.raises(ValueError, match="CORS_ALLOW_CREDENTIALS"):
        _settings(cors_allow_origins="*", cors_allow_credentials=True)
    with_credentials = _settings(cors_allow_origins=ORIGIN, cors_allow_credentials=True)
    assert with_credentials.cors_allow_credentials


async def test_credentialed_cors_echoes_only_the_listed_origin() -> None:
    settings = _settings(cors_allow_origins=ORIGIN, cors_allow_credentials=True)
    async with _client(settings) as client:
        response = await client.options(
            "/api/v1/requests", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_an_unhandled_error_still_carries_the_headers() -> None:
    app = create_app(_settings(cors_allow_origins=ORIGIN))

    @app.get("/test-boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/test-boom", headers={"Origin": ORIGIN})
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert _has_security_headers(response)
    assert response.headers["access-control-allow-origin"] == ORIGIN
