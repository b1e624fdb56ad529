"""Category names and the seed's short aliases.

This module is deliberately dependency-free: the API validates a request's category with
`resolve_category` before anything touches the database, and the worker and classifier share the
same vocabulary. The descriptive data (display names, prompts, presets) lives in `resources/`.
"""

from __future__ import annotations

SPREADSHEET_ANALYSIS = "spreadsheet-analysis"
SPREADSHEET_TRANSFORMATION = "spreadsheet-transformation"
SPREADSHEET_GENERATION = "spreadsheet-generation"
SPREADSHEET_SEARCH = "spreadsheet-search"
SPREADSHEET_FORMATTING = "spreadsheet-formatting"
DATA_CHART = "data-chart"
DATA_HISTOGRAM = "data-histogram"
SPREADSHEET_ASSISTANCE = "spreadsheet-assistance"
PROCESS_CATEGORY = "process-analysis"
UNCERTAIN = "uncertain"

# Ordered as the plugin shows them; `uncertain` last because it is never offered to users.
CATEGORY_NAMES: tuple[str, ...] = (
    SPREADSHEET_ANALYSIS,
    SPREADSHEET_TRANSFORMATION,
    SPREADSHEET_GENERATION,
    SPREADSHEET_SEARCH,
    SPREADSHEET_FORMATTING,
    DATA_CHART,
    DATA_HISTOGRAM,
    SPREADSHEET_ASSISTANCE,
    PROCESS_CATEGORY,
    UNCERTAIN,
)

# Categories that operate on a spreadsheet range (the plugin's requests), as opposed to the
# process-analysis clients' free-text submissions.
SPREADSHEET_CATEGORIES: frozenset[str] = frozenset(CATEGORY_NAMES) - {PROCESS_CATEGORY, UNCERTAIN}

# Categories a client may ask for or the classifier may pick; `uncertain` is only ever an outcome.
ACTIVE_CATEGORIES: tuple[str, ...] = tuple(name for name in CATEGORY_NAMES if name != UNCERTAIN)

# The seed contract's short names stay valid forever: old plugins send them.
ALIASES: dict[str, str] = {
    "analysis": SPREADSHEET_ANALYSIS,
    "transformation": SPREADSHEET_TRANSFORMATION,
    "search": SPREADSHEET_SEARCH,
    "generation": SPREADSHEET_GENERATION,
}

_LOOKUP: dict[str, str] = {name: name for name in CATEGORY_NAMES} | ALIASES


def resolve_category(name: str) -> str | None:
    """Canonical category name for `name` (alias-aware, case- and whitespace-insensitive).

    Returns None for anything unknown so callers decide whether that is a 422 or `uncertain`.
    Underscores are accepted for hyphens because clients built from Python enums send them.
    """
    if not isinstance(name, str):
        return None
    key = name.strip().lower().replace("_", "-")
    return _LOOKUP.get(key)
