"""What every HTTP response shares: security headers, CORS, robots.txt, and docs served offline.

Corporate GigaChat deployments are often without internet, so /docs and /redoc load Swagger UI and
ReDoc from files the service itself serves (the `fastapi-offline` package ships them), not a CDN.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.body_limit import BodySizeLimitMiddleware
from service.config import Settings

DOCS_ASSETS_PATH = "/static/docs"
# Sent with every response, as the seed's later versions did. None of them hinders /docs: the
# page and its assets come from this origin and nothing frames it.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)
# The spreadsheet plugin's pages (service/api/plugin.py) run in an iframe of the user's editor, whose
# origin the service cannot know: they, and only they, may be framed.
FRAMEABLE_PREFIX = "/plugin/"
FRAMEABLE_HEADERS = tuple(header for header in SECURITY_HEADERS if header[0] != b"x-frame-options")
ROBOTS_TXT = "User-agent: *\nDisallow: /\n"


class SecurityHeadersMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it only appends headers to the response start, so it
    costs next to nothing on the hot paths and never buffers a body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        added = FRAMEABLE_HEADERS if scope["path"].startswith(FRAMEABLE_PREFIX) else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() not in _SECURITY_HEADER_NAMES
                ]
                message = {**message, "headers": [*headers, *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServiceApp(FastAPI):
    """FastAPI with layers outside Starlette's ServerErrorMiddleware: what `add_middleware` adds sits
    inside it, so an unhandled error's 500 would go out without security headers and CORS."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outer_layers: list[Callable[[ASGIApp], ASGIApp]] = []

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        for layer in reversed(self.outer_layers):  # the first listed ends up outermost
            stack = layer(stack)
        return stack


def docs_assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_web(app: ServiceApp, settings: Settings) -> None:
    """Call once on an app made with docs_url=None and redoc_url=None."""
    # Outermost first: CORS preflight answers get the security headers too.
    app.outer_layers.append(SecurityHeadersMiddleware)
    if settings.cors_allow_origins:
        app.outer_layers.append(
            partial(
                CORSMiddleware,
                allow_origins=settings.cors_allow_origins,
                allow_credentials=settings.cors_allow_credentials,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["Location", "Retry-After"],
                max_age=600,
            )
        )

    # Inside CORS, so a browser can read the 413 too.
    app.outer_layers.append(partial(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes))

    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    title = f"{app.title} — API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    @app.get("/robots.txt", include_in_schema=False)
    async def robots() -> PlainTextResponse:
        return PlainTextResponse(ROBOTS_TXT)
