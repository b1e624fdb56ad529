"""Keys (admin) and prompts: create, revoke and limit keys; prompt versions, diffs, edits, roll-back."""

from __future__ import annotations

import difflib
import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from service.api.deps import SessionDep
from service.callers.budgets import period_bounds
from service.console.auth import ConsoleUser, admin_user, checked_form, current_user
from service.console.parts import runtime
from service.console.web import ConsoleRoute, plain_id, render, see_other
from service.db import console_repo
from service.db import prompts_repo as prompts_repo
from service.db.key_models import Role
from service.db.models import utcnow
from service.db.unit_of_work import after_commit
from service.errors import NotFound, ValidationFailed
from service.pipeline.resources import LANGUAGES
from service.usecases import keys as keys_usecase
from service.usecases import prompt_library

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
UserDep = Annotated[ConsoleUser, Depends(current_user)]
AdminDep = Annotated[ConsoleUser, Depends(admin_user)]
LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "daily_tokens", "monthly_tokens")
STATS_DAYS = 30


def _text(form: FormData, name: str, limit: int, *, required: bool = False) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise ValidationFailed(f"'{name}' must not be empty.")
    if len(text) > limit or "\x00" in text:
        raise ValidationFailed(f"'{name}' holds at most {limit} characters of text.")
    return text


def _limits(form: FormData) -> dict[str, int | None]:
    """The limit fields of a form: empty means none (or the default rate)."""
    limits: dict[str, int | None] = {}
    for name in LIMIT_FIELDS:
        raw = _text(form, name, 20)
        if not raw:
            limits[name] = None
            continue
        if not raw.isdigit() or int(raw) > 2**31 - 1:
            raise ValidationFailed(f"'{name}' must be a whole number from 0 to {2**31 - 1}, or empty.")
        limits[name] = int(raw)
    return limits


# --- keys ----------------------------------------------------------------------------------------


async def _keys_page(
    request: Request, session: AsyncSession, new_secret: str | None = None, new_name: str | None = None
) -> Response:
    now = utcnow()
    rows = await keys_usecase.list_keys(session, include_revoked=True)
    # May sum closed days into usage_days: the route's unit of work commits them.
    usage = await console_repo.usage_summary(session, None, period_bounds(now)["month"][0], now)
    keys = [
        {
            "row": row,
            "today": usage.today_by_owner.get(row.id, (0, 0)),
            "month": usage.by_owner.get(row.id, (0, 0)),
        }
        for row in rows
    ]
    return render(
        request,
        "keys.html",
        page="keys",
        keys=keys,
        roles=Role.ALL,
        limit_fields=LIMIT_FIELDS,
        new_secret=new_secret,
        new_name=new_name,
        message=request.query_params.get("done"),
    )


@router.get("/keys")
async def keys_page(request: Request, user: AdminDep, session: SessionDep) -> Response:
    return await _keys_page(request, session)


@router.post("/keys")
async def create_key(request: Request, user: AdminDep, session: SessionDep) -> Response:
    form = await checked_form(request)
    name = _text(form, "name", 200, required=True)
    role = _text(form, "role", 16) or Role.USER
    created = await keys_usecase.create_key(session, name, role, actor=_actor(user), **_limits(form))
    # The secret is on this one answer only (never stored, never in a URL): no redirect.
    return await _keys_page(request, session, new_secret=created.secret, new_name=name)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, user: AdminDep, session: SessionDep) -> Response:
    await checked_form(request)
    await keys_usecase.revoke_key(session, plain_id(key_id, "API key"), actor=_actor(user))
    _forget_after_commit(request, session, key_id)
    return see_other("/console/keys?done=revoked")


@router.post("/keys/{key_id}/limits")
async def edit_limits(request: Request, key_id: str, user: AdminDep, session: SessionDep) -> Response:
    form = await checked_form(request)
    await keys_usecase.update_key(session, plain_id(key_id, "API key"), _limits(form), actor=_actor(user))
    _forget_after_commit(request, session, key_id)
    return see_other("/console/keys?done=limits")


def _actor(user: Any) -> str:
    """Who the audit log names for a console change: the signed-in admin's key."""
    return str(user.caller.key_id or "console")


def _forget_after_commit(request: Request, session: AsyncSession, key_id: str) -> None:
    """This process trusts the key's new state at once, once it is committed (others within
    API_KEY_CACHE_SECONDS)."""
    authenticator = runtime(request).authenticator

    async def forget() -> None:
        authenticator.forget(key_id)

    after_commit(session, forget)


# --- prompts -------------------------------------------------------------------------------------


@router.get("/prompts")
async def prompts_page(request: Request, user: UserDep, session: SessionDep) -> Response:
    categories = await prompt_library.list_categories(session)
    current = await prompts_repo.list_templates(session)
    by_category: dict[str, list[Any]] = {}
    for row in current:
        by_category.setdefault(row.category, []).append(row)
    return render(request, "prompts.html", page="prompts", categories=categories, current=by_category)


def _category(category: str) -> str:
    return plain_id(category, "category")


def _language(language: str) -> str:
    if language not in LANGUAGES:
        raise NotFound(f"No templates in language '{language[:8]}'.")
    return language


def _template_text(row: Any) -> list[str]:
    examples = json.dumps(row.examples, ensure_ascii=False, indent=1)
    return [
        "# system prompt", *row.system_prompt.splitlines(), "", "# user template",
        *row.user_template.splitlines(), "", "# examples", *examples.splitlines(),
    ]  # fmt: skip


def _diff(older: Any, newer: Any) -> list[tuple[str, str]]:
    lines = difflib.unified_diff(
        _template_text(older), _template_text(newer), f"v{older.version}", f"v{newer.version}", lineterm=""
    )
    marks = {"+": "add", "-": "del", "@": "hunk"}
    return [("head" if line[:4] in ("+++ ", "--- ") else marks.get(line[:1], "same"), line) for line in lines]


@router.get("/prompts/{category}/{language}")
async def prompt_page(
    request: Request,
    category: str,
    language: str,
    user: UserDep,
    session: SessionDep,
    a: int | None = None,
    b: int | None = None,
) -> Response:
    category, language = _category(category), _language(language)
    versions = list(
        await prompts_repo.list_templates(session, category=category, language=language, history=True)
    )
    if not versions:
        raise NotFound(f"No templates for '{category[:64]}' in '{language}'.")
    figures = await console_repo.version_figures(session, category, utcnow() - timedelta(days=STATS_DAYS))
    by_version = {row.version: row for row in versions}
    current = next((row for row in versions if row.is_current), versions[0])
    newer = by_version.get(b) if b is not None else current
    older = (
        by_version.get(a)
        if a is not None
        else next((r for r in versions if r.version < current.version), None)
    )
    if (a is not None and older is None) or (b is not None and newer is None):
        raise NotFound("No such version to compare.")
    return render(
        request,
        "prompt.html",
        page="prompts",
        category=category,
        language=language,
        versions=versions,
        current=current,
        figures=figures,
        stats_days=STATS_DAYS,
        older=older,
        newer=newer,
        diff=_diff(older, newer) if older is not None and newer is not None else None,
        message=request.query_params.get("done"),
    )


def _write(form: FormData, note: str | None = None) -> prompt_library.TemplateWrite:
    raw_examples = _text(form, "examples", 100_000) or "[]"
    try:
        examples = json.loads(raw_examples)
    except ValueError:
        raise ValidationFailed("'examples' must be a JSON array.") from None
    if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
        raise ValidationFailed("'examples' must be a JSON array of objects.")
    return prompt_library.TemplateWrite(
        system_prompt=_text(form, "system_prompt", 50_000, required=True),
        user_template=_text(form, "user_template", 50_000, required=True),
        examples=examples,
        note=note if note is not None else (_text(form, "note", 500) or None),
    )


@router.post("/prompts/{category}/{language}")
async def edit_prompt(
    request: Request, category: str, language: str, user: AdminDep, session: SessionDep
) -> Response:
    form = await checked_form(request)
    category, language = _category(category), _language(language)
    write = _write(form)
    row = await prompt_library.create_template(session, category, language, write, user.caller.key_id)
    return see_other(f"/console/prompts/{row.category}/{language}?done=saved")


@router.post("/prompts/{category}/{language}/rollback")
async def roll_back(
    request: Request, category: str, language: str, user: AdminDep, session: SessionDep
) -> Response:
    """Rolling back appends the old version's content as the newest version: history only grows."""
    form = await checked_form(request)
    category, language = _category(category), _language(language)
    version = _text(form, "version", 10)
    rows = await prompts_repo.list_templates(session, category=category, language=language, history=True)
    old = next((row for row in rows if str(row.version) == version), None)
    if old is None:
        raise NotFound(f"No version {version[:10]} of this template.")
    write = prompt_library.TemplateWrite(
        old.system_prompt, old.user_template, list(old.examples or []), f"roll back to v{old.version}"
    )
    await prompt_library.create_template(session, category, language, write, user.caller.key_id)
    return see_other(f"/console/prompts/{category}/{language}?done=rolledback")
