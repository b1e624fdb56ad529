"""The operator console at /console: server-rendered pages over the same use-cases and repositories
as the API (README, "Operator console"). `install_console(app)` mounts all of it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.console import admin, overview, requests, spend
from service.console.web import HERE


def install_console(app: FastAPI) -> None:
    for module in (overview, requests, admin, spend):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
