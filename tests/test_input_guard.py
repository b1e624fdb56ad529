"""A structural guard for every route, present and future: each text value a route accepts (body,
path, query, header) goes through the storable-text check, each integer has bounds, each float is
finite and free-form JSON is checked all the way down. A new route that takes a bare `str` or `int`
fails here, naming the route and the field, before a fuzzer or a user finds the 500.

Use the types of service/schemas/fields.py: SafeText / Text / ColumnText, ColumnInt / IdPath / Int64,
JsonScalar / SafeJson / SafeJsonObject.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

import service.api
from service.schemas.fields import check_json, check_text

CHECKERS = (check_text, check_json)


def routers() -> Iterator[APIRouter]:
    for module_info in pkgutil.iter_modules(service.api.__path__):
        module = importlib.import_module(f"service.api.{module_info.name}")
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            yield router


def route_fields(route: APIRoute) -> Iterator[tuple[str, Any]]:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        pending.extend(dependant.dependencies)
        for kind in ("path_params", "query_params", "header_params", "cookie_params", "body_params"):
            for field in getattr(dependant, kind):
                yield f"{kind.removesuffix('_params')}.{field.name}", field._type_adapter.core_schema


def problems(
    schema: dict[str, Any], where: str, definitions: dict[str, Any], seen: set[str]
) -> Iterator[str]:
    kind = schema["type"]
    if kind == "definitions":
        definitions = {**definitions, **{d["ref"]: d for d in schema["definitions"]}}
        yield from problems(schema["schema"], where, definitions, seen)
        return
    if kind == "definition-ref":
        ref = schema["schema_ref"]
        if ref not in seen:
            yield from problems(definitions[ref], where, definitions, seen | {ref})
        return
    function = schema.get("function", {}).get("function")
    if kind in ("function-before", "function-after", "function-wrap") and function in CHECKERS:
        # Checked by the storable-text / JSON rules; only the integer bounds below remain to check
        # for a str schema wrapped by check_text, and nothing for check_json (it checks it all).
        if function is check_json:
            return
        inner = schema["schema"]
        if inner["type"] == "str":
            return
    if kind == "str":
        yield f"{where}: text without the storable-text check"
    elif kind == "int" and (
        ("le" not in schema and "lt" not in schema) or ("ge" not in schema and "gt" not in schema)
    ):
        yield f"{where}: integer without bounds"
    elif kind == "float" and schema.get("allow_inf_nan", True):
        yield f"{where}: float that accepts NaN/Infinity"
    elif kind == "any":
        yield f"{where}: free-form value without the JSON check"
    elif kind in ("model-fields", "typed-dict"):
        for name, field in schema["fields"].items():
            yield from problems(field["schema"], f"{where}.{name}", definitions, seen)
        return
    elif kind == "model" and schema.get("config", {}).get("allow_inf_nan") is False:
        # A model-level allow_inf_nan=False covers its float fields.
        yield from (p for p in problems(schema["schema"], where, definitions, seen) if "NaN" not in p)
        return
    for key in ("schema", "items_schema", "keys_schema", "values_schema"):
        if isinstance(schema.get(key), dict):
            yield from problems(schema[key], where, definitions, seen)
    choices = schema.get("choices")
    if isinstance(choices, dict):
        choices = list(choices.values())
    for choice in choices or []:
        yield from problems(choice[0] if isinstance(choice, tuple) else choice, where, definitions, seen)


def test_every_route_input_is_validated_structurally() -> None:
    found: list[str] = []
    checked = 0
    for router in routers():
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            for where, schema in route_fields(route):
                checked += 1
                label = f"{sorted(route.methods)[0]} {route.path} {where}"
                found.extend(problems(schema, label, {}, set()))
    assert checked > 20, "the guard found almost no inputs: the walk is broken"
    assert not found, "\n".join(sorted(set(found)))


def test_the_guard_catches_a_bare_str_and_an_unbounded_int() -> None:
    router = APIRouter()

    @router.get("/x/{item}")
    async def bare(item: int, name: str) -> None: ...

    route = router.routes[0]
    assert isinstance(route, APIRoute)
    found = [p for where, schema in route_fields(route) for p in problems(schema, where, {}, set())]
    assert sorted(found) == [
        "path.item: integer without bounds",
        "query.name: text without the storable-text check",
    ]
