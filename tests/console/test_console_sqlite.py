"""The console on the embedded default (`make run`: SQLite): every page renders with data in it.
No browser here; the browser tests run against PostgreSQL."""

from __future__ import annotations

import re

import httpx

from tests.support import PROCESS_EXAMPLE, bearer, issue_key, make_settings, running_service


async def test_every_page_renders_on_sqlite(sqlite_url: str, kafka_bootstrap: str) -> None:
    settings = make_settings(sqlite_url, kafka_bootstrap, allow_anonymous=False)
    admin = await issue_key(settings, "sqlite operator", "admin")
    async with running_service(settings) as svc:
        submitted = await svc.client.post("/api/v1/requests", json=PROCESS_EXAMPLE, headers=bearer(admin))
        request_id = submitted.json()["id"]
        for _ in range(6):  # the worker may take a while to start on a busy machine
            final = await svc.client.get(f"/api/v1/requests/{request_id}?wait=30", headers=bearer(admin))
            if final.json()["status"] != "queued":
                break
        assert final.json()["status"] == "completed"
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/console/signin")
            form = {"csrf_token": client.cookies["gigaoffice_console_signin"], "api_key": admin}
            assert (await client.post("/console/signin", data=form)).status_code == 303
            overview = await client.get("/console")
            assert overview.status_code == 200
            # One completion in the last hour: its latency percentiles are figures, not dashes.
            assert re.search(r"<dt>p50</dt><dd>[0-9.]+ (ms|s)</dd>", overview.text), overview.text
            listing = await client.get("/console/requests?status=completed&kind=process_analysis")
            assert request_id in listing.text
            detail = await client.get(f"/console/requests/{request_id}")
            assert "raw answer" in detail.text and "LLM call 1" in detail.text
            for path in (
                "/console/keys",
                "/console/usage?days=7",
                "/console/usage.csv?days=7",
                "/console/batches",
                "/console/prompts",
                "/console/webhooks",
                "/console/overview/live",
            ):
                page = await client.get(path)
                assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"
            csv = await client.get("/console/usage.csv?days=1")
            assert csv.text.splitlines()[1].split(",")[1] == admin.split("_")[1]
