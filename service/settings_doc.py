"""The configuration page's table of every setting, generated from the settings groups.

It is also the MkDocs hook that puts the table into docs/configuration.md at build time
(`hooks:` in mkdocs.yml), so the documented names, types, defaults and descriptions are the
code's own and cannot drift. `make docs` runs MkDocs from the repository root, where `service`
is importable. Nothing at run time imports this module.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from service.config import SETTING_GROUPS

MARKER = "<!-- settings-table -->"

_BOUNDS = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
)


def group_title(group: type[BaseModel]) -> tuple[str, str]:
    """A group's title and description: its docstring's text before and after the colon."""
    doc = " ".join((group.__doc__ or group.__name__).split())
    title, _, rest = doc.partition(":")
    rest = rest.strip()
    return title.strip().rstrip("."), rest[:1].upper() + rest[1:]


def type_name(annotation: Any) -> str:
    """How a reader writes the value in the environment."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        shown = [type_name(arg) for arg in args if arg is not type(None)]
        return " \\| ".join(shown)
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{arg}`" for arg in args)
    if typing.get_origin(annotation) is dict:
        return "JSON object"
    if typing.get_origin(annotation) is list:
        return "comma-separated list"
    if annotation is SecretStr:
        return "secret"
    if annotation is Path:
        return "file path"
    return getattr(annotation, "__name__", str(annotation))


def bounds(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
    return ", ".join(parts)


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: object = info.default_factory()  # type: ignore[call-arg]
    else:
        value = info.default
    if value is None:
        return "*unset*"
    if value == "":
        return "*empty*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    if isinstance(value, list):
        return ", ".join(f"`{item}`" for item in value) or "*empty*"
    return f"`{value}`"


def _anchor(group: type[BaseModel]) -> str:
    return "group-" + group.__name__.removesuffix("Settings").lower()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    """One Markdown table: a row per setting, grouped by concern under a row naming the group."""
    groups = [(group, *group_title(group)) for group in SETTING_GROUPS]
    lines = [
        "Groups: " + " · ".join(f"[{title}](#{_anchor(group)})" for group, title, _ in groups),
        "",
        "| Environment variable | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    for group, title, about in groups:
        name = f'<span id="{_anchor(group)}"></span>**{title}**'
        lines.append(f"| {name} | | | *{_cell(about)}* |" if about else f"| {name} | | | |")
        for name, info in group.model_fields.items():
            kind = type_name(info.annotation)
            limit = bounds(info)
            if limit:
                kind = f"{kind} ({limit})"
            env = name.upper()
            lines.append(
                f'| <span id="{env}"></span>`{env}` | {kind} | {default_text(info)} '
                f"| {_cell(info.description or '')} |"
            )
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, **_: object) -> str:
    """MkDocs hook: the marker on the configuration page becomes the table."""
    return markdown.replace(MARKER, settings_table()) if MARKER in markdown else markdown
