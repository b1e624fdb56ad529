"""The plugin as the service serves it (service/api/plugin.py): its files, framable by an editor
while nothing else is, and its package with the service's public URL pre-filled."""

from __future__ import annotations

import io
import json
import zipfile

import httpx

from service.app import create_app
from service.config import Settings


def _client(**overrides: object) -> httpx.AsyncClient:
    settings = Settings(_env_file=None, **overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://office.test:8000")


async def test_the_plugin_pages_are_served_and_may_be_framed_while_the_api_may_not() -> None:
    async with _client() as client:
        index = await client.get("/plugin/")
        config = await client.get("/plugin/config.json")
        script = await client.get("/plugin/scripts/core.js")
        docs = await client.get("/docs")
        missing = await client.get("/plugin/no-such-file.js")
    assert index.status_code == 200 and "<title>GigaOffice AI</title>" in index.text
    assert index.headers["content-type"].startswith("text/html")
    assert config.json()["guid"].startswith("asc.{")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    for page in (index, config, script):
        assert "x-frame-options" not in page.headers, page.request.url  # the editor frames the plugin
        assert page.headers["x-content-type-options"] == "nosniff"
    assert docs.headers["x-frame-options"] == "DENY"  # and nothing else
    assert missing.status_code == 404


async def test_the_package_is_the_plugin_folder_with_the_request_base_url_pre_filled() -> None:
    async with _client() as client:
        response = await client.get("/plugin/gigaoffice.plugin")
        defaults = await client.get("/plugin/defaults.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="gigaoffice.plugin"' in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {"config.json", "index.html", "scripts/panel.js", "translations/ru-RU.json"} <= names
    assert {"resources/light/icon.png", "resources/dark/icon.png"} <= names
    assert not any(name.startswith("tests/") for name in names)  # the plugin's unit tests stay home
    config = json.loads(archive.read("config.json"))
    assert config["variations"][0]["EditorsSupport"] == ["cell"]
    assert json.loads(archive.read("defaults.json")) == {"serviceUrl": "http://office.test:8000"}
    assert defaults.json() == {"serviceUrl": "http://office.test:8000"}


async def test_public_url_wins_over_the_request_address() -> None:
    async with _client(public_url="https://gigaoffice.example.org/") as client:
        response = await client.get("/plugin/gigaoffice.plugin")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert json.loads(archive.read("defaults.json")) == {"serviceUrl": "https://gigaoffice.example.org"}
