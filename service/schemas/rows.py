"""Spreadsheet rows as clients send them: a 2-D array, or (the seed's plugins) a list of row objects.

`[{"Товар": "A", "Янв": 1}, {"Товар": "B", "Фев": 2}]` becomes a header row of every key in the
order first seen, then one row per object with None where an object lacks a key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def rows_from_objects(value: Any) -> Any:
    if not isinstance(value, list) or not value or not all(isinstance(row, dict) for row in value):
        return value  # a 2-D array (or something the field's own validation rejects)
    rows = [{str(key): cell for key, cell in row.items()} for row in value]
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(row))
    columns = list(header)
    return [columns, *([row.get(column) for column in columns] for row in rows)]


def row_objects(cell: Any) -> BeforeValidator:
    """Annotate a rows field with it: `Annotated[list[list[Cell]] | None, row_objects(Cell)]`. The
    OpenAPI schema then shows both accepted shapes, so clients (and schemathesis) know that a list
    of row objects is valid input too."""
    return BeforeValidator(
        rows_from_objects, json_schema_input_type=list[list[cell]] | list[dict[str, cell]] | None
    )
