"""Safe placeholder substitution for prompt templates.

Templates are edited by operators and filled with user text, so substitution is deliberately
dumb: `{name}` is replaced by a value from a fixed vocabulary, `{{` and `}}` are literal braces,
and nothing else is interpreted. Unlike `str.format`, there is no attribute or index access
(`{query.__class__}` is just an unknown placeholder), and substituted values are never scanned
again, so user text containing `{system}` or `{{` stays exactly as typed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

# Every name a template may use. Keep in sync with prompt.build_prompt, which supplies them.
PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "query",
        "table",
        "range",
        "rows",
        "columns",
        "title",
        "description",
        "company_size",
        "industry",
        "language",
        "answer_format",
        "category",
    }
)

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


class TemplateError(ValueError):
    """A template uses an unknown placeholder or a stray brace."""


def placeholders(template: str) -> set[str]:
    """Names used by `template`; raises TemplateError on unknown names or unbalanced braces."""
    used: set[str] = set()
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise TemplateError(
                f"stray {token!r} at position {match.start()}: write '{{{{' or '}}}}' for a literal brace"
            )
        if name not in PLACEHOLDERS:
            allowed = ", ".join(sorted(PLACEHOLDERS))
            raise TemplateError(f"unknown placeholder {{{name}}}; allowed: {allowed}")
        used.add(name)
    return used


@lru_cache(maxsize=256)
def _validated(template: str) -> None:
    # A worker renders the same few templates on every request: validate each text once. A broken
    # one raises, which lru_cache does not remember, so it raises again on every use.
    placeholders(template)


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute placeholders in one pass. Missing values render as empty strings."""
    _validated(template)  # validate first so a broken template never reaches a model

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return str(values.get(match.group(1) or "", ""))

    return _TOKEN.sub(replace, template)
