"""`python -m service keys create|list|revoke|update`: API keys from the command line (the only way
to make a deployment's first admin key). The secret is printed once, on create, and nowhere else."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.db.key_models import ApiKey, Role
from service.errors import AppError
from service.runtime import open_runtime
from service.usecases import keys as service

_LIMITS = (
    ("--rpm", "requests_per_minute", "requests per minute (submit and classify)"),
    ("--tpm", "tokens_per_minute", "LLM tokens per minute"),
    ("--daily-tokens", "daily_tokens", "token budget per UTC day"),
    ("--monthly-tokens", "monthly_tokens", "token budget per UTC month"),
    ("--retention-days", "retention_days", "days a finished request is kept (below RETENTION_DAYS)"),
)


def register(commands: Any) -> None:
    """Add `keys` and its actions to the CLI's sub-commands."""
    keys = commands.add_parser(
        "keys",
        help="Manage API keys: create, list, revoke, update (see `keys --help`).",
        description=__doc__,
    )
    _add_actions(keys)
    keys.set_defaults(server_command=run_keys_args)


def build_parser() -> argparse.ArgumentParser:
    """`keys` on its own (for callers that hold Settings already)."""
    parser = argparse.ArgumentParser(prog="python -m service keys", description=__doc__)
    _add_actions(parser)
    return parser


def _add_actions(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="action", required=True)
    create = commands.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=Role.ALL, default=Role.USER)
    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    update = commands.add_parser("update", help="change a key's name, role or limits (-1 clears a limit)")
    update.add_argument("key_id")
    update.add_argument("--name")
    update.add_argument("--role", choices=Role.ALL)
    for sub in (create, update):
        for flag, _field, text in _LIMITS:
            sub.add_argument(flag, type=int, help=text)


def describe(row: ApiKey) -> str:
    limits = ", ".join(
        f"{flag[2:]}={getattr(row, field)}" for flag, field, _ in _LIMITS if getattr(row, field) is not None
    )
    state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
    used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
    return (
        f"{row.id}  {row.prefix}…  {row.role:<5}  {state:<24}  last used {used:<16}  "
        f"{row.name}{'  [' + limits + ']' if limits else ''}"
    )


def _limit_values(args: argparse.Namespace, *, clear_negative: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for _flag, field, _ in _LIMITS:
        value = getattr(args, field_name(_flag))
        if value is not None:
            values[field] = None if (clear_negative and value < 0) else value
    return values


def field_name(flag: str) -> str:
    return flag[2:].replace("-", "_")


async def _run(settings: Settings, action: Callable[[AsyncSession], Awaitable[str]]) -> str:
    """One unit of work on the CLI's runtime (the database only): the command commits, nothing else."""
    async with open_runtime(settings, role="cli") as rt, rt.sessions() as session:
        output = await action(session)
        await session.commit()
        return output


def run_keys(settings: Settings, argv: list[str]) -> int:
    return run_keys_args(settings, build_parser().parse_args(argv))


def run_keys_args(settings: Settings, args: argparse.Namespace) -> int:

    async def create(session: AsyncSession) -> str:
        created = await service.create_key(
            session, args.name, args.role, **_limit_values(args, clear_negative=False)
        )
        return (
            f"{describe(created.row)}\n\nAPI key (shown once, store it now):\n{created.secret}\n"
            "Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        )

    async def listing(session: AsyncSession) -> str:
        rows = await service.list_keys(session, include_revoked=args.all)
        return "\n".join(describe(row) for row in rows) or "no keys"

    async def revoke(session: AsyncSession) -> str:
        row = await service.revoke_key(session, args.key_id)
        return f"{describe(row)}\n(API processes stop accepting it within API_KEY_CACHE_SECONDS)"

    async def update(session: AsyncSession) -> str:
        values = _limit_values(args, clear_negative=True)
        values.update({k: v for k, v in (("name", args.name), ("role", args.role)) if v is not None})
        return describe(await service.update_key(session, args.key_id, values))

    actions = {"create": create, "list": listing, "revoke": revoke, "update": update}
    try:
        print(asyncio.run(_run(settings, actions[args.action])))
    except AppError as exc:
        print(f"error: {exc.message}")
        return 1
    except DBAPIError as exc:
        print(
            f"error: the database refused ({type(exc.orig).__name__}); "
            "is it migrated (`python -m service migrate`)?"
        )
        return 1
    return 0
