"""The operator console driven in headless Chromium against a running service with data in it.

Each page is checked for the data it must show, and saved as docs/screenshots/console-<page>.png.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, expect
from sqlalchemy import update

from service.db.console_models import ConsoleSession
from service.db.models import AnalysisRequest, utcnow
from tests.console.conftest import SCREENSHOTS, Console


async def signed_in(browser: Browser, console: Console, key: str) -> Page:
    context = await browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto("/console")
    # Not signed in: the overview sends the browser to the sign-in form.
    await expect(page).to_have_url(re.compile(r"/console/signin\?next=/console$"))
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return page


async def status_of(console: Console, request_id: str) -> str | None:
    async with console.svc.sessions() as session:
        row = await session.get(AnalysisRequest, uuid.UUID(request_id))
        return row.status if row is not None else None


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


async def test_admin_sees_every_page_with_its_data(browser: Browser, console: Console) -> None:
    page = await signed_in(browser, console, console.admin_key)
    ids = console.ids
    # Overview: lanes with the queued row, throughput, latency, errors, backend state.
    lanes = page.get_by_role("table").first
    await expect(lanes.get_by_role("row", name=re.compile("interactive"))).to_contain_text("1")
    await expect(page.get_by_text("answer_invalid")).to_be_visible()
    await expect(page.get_by_role("heading", name="Dead-letter queue")).to_be_visible()
    await expect(page.get_by_text("closed")).to_be_visible()  # the fallback circuit
    await expect(page.locator("dl.pcts")).not_to_contain_text("—")
    await shot(page, "overview")

    # Requests: every owner's rows; the filters narrow them.
    await page.get_by_role("link", name="Requests", exact=True).click()
    for request_id in ids["a"] + ids["b"]:
        await expect(page.get_by_role("link", name=request_id[:12], exact=False)).to_have_count(1)
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("table.list tbody tr")).to_have_count(1)
    await expect(page.locator("table.list")).to_contain_text("answer_invalid")
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Owner (key id)").fill(console.owner_b)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("table.list tbody tr")).to_have_count(2)
    await page.goto("/console/requests")
    await shot(page, "requests")

    # A completed request: timeline, the prompt as sent, the raw and the validated answer, feedback.
    await page.goto(f"/console/requests/{ids['a'][0]}")
    timeline = page.locator("ol.timeline li")
    await expect(timeline).to_have_count(3)
    await expect(timeline.nth(2)).to_contain_text("completed")
    await expect(page.locator(".msg .role").first).to_have_text("system")
    await expect(page.locator(".msg.answer")).to_have_count(1)
    await expect(page.get_by_role("heading", name="Validated answer")).to_be_visible()
    await expect(page.get_by_text("spot on")).to_be_visible()
    await expect(page.get_by_role("row", name=re.compile("Cost"))).to_contain_text("0.")
    await shot(page, "request")

    # Usage and cost: a chart, per key and per model, and the CSV export.
    await page.get_by_role("link", name="Usage and cost").click()
    await expect(page.locator("svg.chart")).to_be_visible()
    await expect(page.get_by_role("cell", name=console.owner_a)).to_be_visible()
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name=re.compile("Export CSV")).click()
    download = await download_info.value
    csv_text = await asyncio.to_thread(Path(await download.path()).read_text)
    assert csv_text.startswith("day,owner,model,requests") and console.owner_a in csv_text
    await shot(page, "usage")

    # Batches: progress, and the downloads.
    await page.get_by_role("link", name="Batches", exact=True).click()
    await expect(page.locator("progress")).to_have_count(1)
    await shot(page, "batches")
    await page.locator("table.list a").first.click()
    await expect(page.get_by_role("heading", name=re.compile("^Batch batch_"))).to_be_visible()
    await expect(page.get_by_role("link", name="Download results")).to_be_visible()
    await shot(page, "batch")

    # Webhooks: the endpoint, its delivery with its outcome, and replay.
    await page.get_by_role("link", name="Webhooks").click()
    await page.get_by_role("link", name="http://127.0.0.1:9/hook").click()
    await expect(page.get_by_role("cell", name=f"{ids['delivery_a']} request")).to_be_visible()
    await expect(page.locator("table.list")).to_contain_text("503")
    await page.get_by_role("button", name=f"Replay delivery {ids['delivery_a']}").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("queued to be sent again"))
    await expect(page.locator("table.list")).to_contain_text("pending")
    await shot(page, "webhooks")


async def test_prompt_edit_makes_a_new_version_with_a_diff_and_rolls_back(
    browser: Browser, console: Console
) -> None:
    page = await signed_in(browser, console, console.admin_key)
    await page.get_by_role("link", name="Prompts").click()
    await shot(page, "prompts")
    await (
        page.get_by_role("row", name=re.compile("process-analysis"))
        .get_by_role("link", name=re.compile("^en v"))
        .click()
    )
    rows = page.locator("table.list tbody tr")
    before = await rows.count()
    system = page.get_by_label("System prompt")
    await system.fill((await system.input_value()) + "\nAlways name the cheapest tool first.")
    await page.get_by_label("Note").fill("cheapest tool first")
    await page.get_by_role("button", name="Save as new version").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("new version"))
    await expect(rows).to_have_count(before + 1)
    await expect(rows.first).to_contain_text("current")
    await expect(rows.first).to_contain_text("cheapest tool first")
    # The diff between the previous and the new version shows the added line, and only it.
    added = page.locator("pre.diff .d-add")
    await expect(added).to_have_count(1)
    await expect(added).to_have_text("+Always name the cheapest tool first.")
    await shot(page, "prompt")
    # Roll back to the first version: its content becomes the newest version.
    await page.get_by_role("button", name="Roll back to version 1").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile("Rolled back"))
    await expect(rows).to_have_count(before + 2)
    await expect(rows.first).to_contain_text("roll back to v1")
    await page.get_by_label("Compare version").select_option("1")
    await page.get_by_label("with version").select_option(str(before + 2))
    await page.get_by_role("button", name="Compare").click()
    await expect(page.locator("pre.diff")).to_have_text("The two versions are identical.")


async def test_keys_create_shows_the_secret_once_and_revoke_ends_it(
    browser: Browser, console: Console
) -> None:
    page = await signed_in(browser, console, console.admin_key)
    await page.get_by_role("link", name="Keys").click()
    await page.get_by_label("Name", exact=True).fill("from the console")
    await page.locator("#k-daily_tokens").fill("1000")
    await page.get_by_role("button", name="Create key").click()
    secret = await page.get_by_label("Secret key").input_value()
    assert secret.startswith("gok_")
    assert secret not in page.url
    # The key works on the API at once, and the page never shows it again.
    async with httpx.AsyncClient(base_url=console.url) as client:
        headers = {"Authorization": f"Bearer {secret}"}
        assert (await client.get("/api/v1/usage", headers=headers)).status_code == 200
        await page.goto("/console/keys")
        assert secret not in await page.content()
        row = page.get_by_role("row", name=re.compile("from the console"))
        await expect(row.locator("meter")).to_have_count(1)  # the daily budget bar
        await shot(page, "keys")
        # Edit its limits, then revoke it: the API refuses it from then on.
        await row.get_by_label("requests per minute").fill("5")
        await row.get_by_role("button", name="Save limits").click()
        await expect(page.get_by_role("status")).to_have_text("The limits were saved.")
        await expect(
            page.get_by_role("row", name=re.compile("from the console")).get_by_label("requests per minute")
        ).to_have_value("5")
        await page.get_by_role("button", name="Revoke from the console").click()
        await expect(page.get_by_role("status")).to_have_text("The key was revoked.")
        await expect(page.get_by_role("row", name=re.compile("from the console"))).to_contain_text("revoked")
        assert (await client.get("/api/v1/usage", headers=headers)).status_code == 401


async def test_cancel_and_requeue_from_the_request_page(browser: Browser, console: Console) -> None:
    page = await signed_in(browser, console, console.key_a)
    await page.goto(f"/console/requests/{console.ids['queued_a']}")
    await page.get_by_role("button", name="Cancel request").click()
    await expect(page.get_by_role("status")).to_have_text("The request was cancelled.")
    await expect(page.locator(".facts")).to_contain_text("cancelled")
    await expect(page.get_by_role("button", name="Cancel request")).to_have_count(0)
    assert await status_of(console, console.ids["queued_a"]) == "cancelled"
    # A failed request goes back on the queue; the worker then finishes it.
    await page.goto(f"/console/requests/{console.ids['failed_a']}")
    await page.get_by_role("button", name="Re-queue").click()
    await expect(page.get_by_role("status")).to_have_text("The request was queued again.")
    for _ in range(300):
        if await status_of(console, console.ids["failed_a"]) == "completed":
            break
        await asyncio.sleep(0.1)
    await page.reload()
    await expect(page.locator(".facts")).to_contain_text("completed")
    await expect(page.locator("ol.timeline li")).to_have_count(3)


async def test_a_user_key_sees_only_its_own_rows(browser: Browser, console: Console) -> None:
    page = await signed_in(browser, console, console.key_b)
    await expect(page.get_by_role("link", name="Keys")).to_have_count(0)
    await page.get_by_role("link", name="Requests", exact=True).click()
    await expect(page.locator("table.list tbody tr")).to_have_count(2)
    html = await page.content()
    assert not any(request_id in html for request_id in console.ids["a"])
    assert console.owner_a not in html
    # A's request, batch and endpoint are 404 for B, exactly like unknown ids; the keys page is 403.
    for path in (
        f"/console/requests/{console.ids['a'][0]}",
        f"/console/batches/{console.ids['batch_a']}",
        f"/console/webhooks/{console.ids['endpoint_a']}",
        f"/console/batches/{console.ids['batch_a']}/results.jsonl",
    ):
        response = await page.request.get(path)
        assert response.status == 404, path
    assert (await page.request.get("/console/keys")).status == 403
    for path in ("/console/usage", "/console/batches", "/console/webhooks"):
        await page.goto(path)
        html = await page.content()
        assert console.owner_a not in html and console.ids["endpoint_a"] not in html, path
    await page.goto("/console/usage")
    await expect(page.get_by_role("cell", name=console.owner_b)).to_be_visible()


async def test_a_form_without_its_csrf_token_is_refused(browser: Browser, console: Console) -> None:
    page = await signed_in(browser, console, console.key_a)
    target = f"/console/requests/{console.ids['a'][1]}/cancel"
    for form in ({}, {"csrf_token": "forged"}):
        refused = await page.request.post(target, form=form)
        assert refused.status == 403
        assert "security token" in await refused.text()
    # The very same post with the page's token goes through (to a 409: the request is final).
    await page.goto(f"/console/requests/{console.ids['a'][1]}")
    token = await page.locator("form.signout input[name=csrf_token]").input_value()
    accepted = await page.request.post(target, form={"csrf_token": token})
    assert accepted.status == 409


async def test_signed_out_sessions_are_refused(browser: Browser, console: Console) -> None:
    page = await signed_in(browser, console, console.key_a)
    cookies = await page.context.cookies()
    session_cookie = next(c for c in cookies if c["name"] == "gigaoffice_console")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
    assert console.key_a not in str(cookies)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The old cookie, replayed, is worth nothing: pages send it to sign-in, posts are refused.
    async with httpx.AsyncClient(
        base_url=console.url, cookies={"gigaoffice_console": session_cookie["value"]}
    ) as client:
        page_view = await client.get("/console/requests")
        assert page_view.status_code == 303 and page_view.headers["location"].startswith("/console/signin")
        post = await client.post(f"/console/requests/{console.ids['a'][1]}/cancel", data={"csrf_token": "x"})
        assert post.status_code == 401


async def test_sign_in_and_navigation_work_from_the_keyboard(browser: Browser, console: Console) -> None:
    context = await browser.new_context(base_url=console.url)
    page = await context.new_page()
    await page.goto("/console/signin")
    # The key field has the focus; typing and Enter sign in without a pointer.
    await page.keyboard.type(console.key_a)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    # The first Tab reaches the skip link, which moves the focus to the content.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Overview")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Requests")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Requests")).to_be_visible()
    # Every form control of the filters has a label.
    for label in ("Status", "Kind", "Category", "Submitted from (UTC)", "to"):
        await expect(page.get_by_label(label, exact=True)).to_have_count(1)
    await context.close()


async def test_an_expired_session_is_refused(browser: Browser, console: Console) -> None:
    page = await signed_in(browser, console, console.key_b)
    async with console.svc.sessions() as session:
        await session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.key_id == console.owner_b)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    await page.goto("/console/requests")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


# Last: from here on this address may not fail a sign-in for a minute.
async def test_failed_sign_ins_are_throttled_per_address(browser: Browser, console: Console) -> None:
    context = await browser.new_context(base_url=console.url)
    page = await context.new_page()
    await page.goto("/console/signin")
    for _ in range(3):
        await page.get_by_label("API key").fill("gok_000000000000_" + "x" * 43)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_have_text("The API key is unknown or revoked.")
    # The limit is reached: even the right key waits now.
    await page.get_by_label("API key").fill(console.key_b)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
    await shot(page, "signin")
    await context.close()
