"""Request kinds as plug-ins: one module per kind, looked up by name.

To add a kind, add one module here (a `Kind` subclass: its input schema, row mapping, prompt,
dryrun answer and renderings; service/kinds/base.py says what each does), list it in `KINDS`
below, and add its tests under tests/kinds/ — plus an Alembic migration only if it needs a column
the request row does not have. Nothing else changes: the submit body's OpenAPI union, the
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
