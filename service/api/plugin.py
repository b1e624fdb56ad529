"""The spreadsheet plugin (plugin/ at the top of the repository), served as it is and packaged.

`GET /plugin/` serves the plugin's own files: an editor can load it straight from the service
(a plugin URL in ONLYOFFICE Docs' `pluginsData`). `GET /plugin/gigaoffice.plugin` is the same folder
as a zip with config.json at its root — what ONLYOFFICE Desktop Editors, Docs and R7-Office install —
with the service's public URL written into its defaults.json, so a user who downloads it from here
has nothing to type but an API key. `GET /plugin/defaults.json` answers the same defaults for the
copy served from here.

Open routes (tests/test_route_matrix.py): the plugin holds no secret, and an editor fetches these
files before any key is typed into it.
"""

from __future__ import annotations

import io
import json
import zipfile
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from service.config import Settings

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugin"
PLUGIN_PATH = "/plugin"
PACKAGE_NAME = "gigaoffice.plugin"
# Not shipped to editors: the plugin's own unit tests.
_LEFT_OUT = ("tests/",)


def public_url(settings: Settings, request: Request) -> str:
    """PUBLIC_URL, else the base URL this request came to (behind a proxy, set PUBLIC_URL)."""
    return (settings.public_url or str(request.base_url)).rstrip("/")


def plugin_defaults(service_url: str) -> dict[str, str]:
    return {"serviceUrl": service_url}


@lru_cache(maxsize=8)
def build_package(service_url: str, stamp: float) -> bytes:
    """The plugin folder as a zip, config.json at its root (`stamp`: the newest file's mtime, so an
    edited plugin is packaged afresh while an unchanged one is zipped once per URL)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PLUGIN_DIR.rglob("*")):
            name = path.relative_to(PLUGIN_DIR).as_posix()
            if path.is_dir() or name.startswith(_LEFT_OUT) or name == "defaults.json":
                continue
            archive.write(path, name)
        archive.writestr("defaults.json", json.dumps(plugin_defaults(service_url), indent=2) + "\n")
    return buffer.getvalue()


def _newest_mtime() -> float:
    return max((p.stat().st_mtime for p in PLUGIN_DIR.rglob("*") if p.is_file()), default=0.0)


def plugin_router(settings: Settings) -> APIRouter:
    """The package and defaults routes. They need only the settings (no runtime: the service's
    address is known before anything is opened), so they close over them."""
    router = APIRouter(prefix=PLUGIN_PATH, include_in_schema=False)

    @router.get(f"/{PACKAGE_NAME}")
    async def plugin_package(request: Request) -> Response:
        body = build_package(public_url(settings, request), _newest_mtime())
        return Response(
            body,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{PACKAGE_NAME}"'},
        )

    @router.get("/defaults.json")
    async def defaults(request: Request) -> JSONResponse:
        return JSONResponse(
            plugin_defaults(public_url(settings, request)), headers={"Cache-Control": "no-cache"}
        )

    return router


def install_plugin(app: FastAPI, settings: Settings) -> None:
    """The package and defaults routes, then the folder itself (html=True: /plugin/ is index.html)."""
    app.include_router(plugin_router(settings))
    if PLUGIN_DIR.is_dir():
        app.mount(PLUGIN_PATH, StaticFiles(directory=PLUGIN_DIR, html=True), name="plugin")
