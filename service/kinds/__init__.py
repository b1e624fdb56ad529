"""Request kinds as plug-ins: one module per kind, looked up by name.

A newcomer adds a kind by adding one module and its tests (plus a migration only if it needs a
column). In detail: the module holds a `Kind` subclass (its input schema, row mapping, prompt,
dryrun answer and renderings; service/kinds/base.py says what each does), one line lists it in
`KINDS` below, and its tests go under tests/kinds/ (test_registry.py round-trips every registered
kind by itself). Nothing else changes: the submit body's OpenAPI union, the
submit path, the worker, the dryrun backend and every surface look the kind up here.
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, TypeAdapter

from service.kinds.base import Kind, KindInput
from service.kinds.chat import Chat
from service.kinds.process_analysis import ProcessAnalysis
from service.kinds.spreadsheet import Spreadsheet
from service.kinds.text import TextKind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (Spreadsheet(), ProcessAnalysis(), Chat(), TextKind())}


def kind_of(name: str) -> Kind:
    """The registered kind; a row or message naming another is a bug, not bad input."""
    return KINDS[name]


# The submit body: a union discriminated on `kind`, one member per registered kind (OpenAPI shows
# each body and its examples). Built from the registry, so a new kind appears here by itself.
if TYPE_CHECKING:
    RequestInput = KindInput
else:
    RequestInput = Annotated[
        functools.reduce(operator.or_, (kind.Input for kind in KINDS.values())), Field(discriminator="kind")
    ]
REQUEST_INPUT: TypeAdapter[KindInput] = TypeAdapter(RequestInput)
EXAMPLES: dict[str, dict[str, Any]] = {
    name: example for kind in KINDS.values() for name, example in kind.examples.items()
}

__all__ = ["EXAMPLES", "KINDS", "REQUEST_INPUT", "Kind", "KindInput", "RequestInput", "kind_of"]
