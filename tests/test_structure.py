"""The structure the renovation set up (issue 14), held by reading the source (no imports run).

- Layers: nothing below service/api imports service.api; schemas and db do not import the layers
  above them; the runtime imports no use-case; service/ imports workers/ only from the CLI entry.
- No import cycle between packages (service.<package> or a top-level module, and workers).
- Only units of work commit: a `.commit(` call appears only in the modules of ALLOWED_COMMITS.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("service", "workers")

# module (dotted) → the reason it may commit. Everything else (use-cases, repositories, stores)
# only flushes, and registers its side effects with service.db.unit_of_work.after_commit.
ALLOWED_COMMITS = {
    "service.db.unit_of_work": "commit(session) / transaction(): the one commit of a unit of work",
    "service.api.deps": "the request-scoped session, a route's unit of work",
    "workers.sweeper": "the sweeper's passes are units of work",
    "workers.feeder": "the batch feeder's passes are units of work",
    "workers.handlers": "the worker's per-message handler",
    "service.messaging.runner": "Kafka offsets (consumer.commit), not a database transaction",
    "service.webhooks.dispatcher": "per-delivery units of work, and its Kafka offsets",
    "service.keys_cli": "CLI commands",
    "service.cli": "CLI commands",
    "service.__main__": "CLI commands",
}

# (importer prefix, imported prefix, why not)
FORBIDDEN = [
    ("service.schemas", "service.usecases", "schemas are below the use-cases"),
    ("service.schemas", "service.runtime", "schemas are below the runtime"),
    ("service.db", "service.usecases", "the database layer is below the use-cases"),
    ("service.db", "service.runtime", "the database layer is below the runtime"),
    ("service.db", "service.schemas", "the database layer is below the schemas"),
    ("service.runtime", "service.usecases", "use-cases receive the runtime, not the reverse"),
    ("service.kinds", "service.usecases", "kinds are below the use-cases (templates come through Prompts)"),
    ("service.kinds", "service.runtime", "kinds are below the runtime"),
    ("service.schemas", "service.kinds", "kinds build on the schemas, not the reverse"),
    ("service.db", "service.kinds", "the database layer is below the kinds"),
    ("service.llm", "service.kinds", "backends are below the kinds (a request carries its dryrun answer)"),
    ("service.pipeline", "service.kinds", "the template machinery is below the kinds"),
]
# Importers allowed to reach service.api: the API itself, the application factory and the operator
# console, a surface beside the API that shares its request dependencies (session, caller).
API_IMPORTERS = ("service.api", "service.app", "service.console")
# service/ modules that may import workers/: the CLI entry that starts a worker.
WORKER_IMPORTERS = ("service.__main__", "service.cli")

# Cycles between packages that other renovation branches remove; each names its owner. Delete the
# entry when that branch lands (the test then holds the line).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def modules() -> Iterator[tuple[str, Path]]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield dotted.removesuffix(".__init__"), path


def imports(path: Path) -> Iterator[str]:
    """Every module an import statement names (also imports inside functions, which still tie
    the packages together)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from service import monitoring` imports the module service.monitoring
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def ours(name: str) -> bool:
    return name.split(".")[0] in SOURCES


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def package(name: str) -> str:
    parts = name.split(".")
    return parts[0] if parts[0] == "workers" else ".".join(parts[:2])


def import_edges() -> list[tuple[str, str]]:
    known = {name for name, _ in modules()}
    edges = []
    for name, path in modules():
        for imported in imports(path):
            if ours(imported) and imported in known and imported != name:
                edges.append((name, imported))
    return edges


def test_no_import_reaches_a_higher_layer() -> None:
    wrong = []
    for importer, imported in import_edges():
        if under(imported, "service.api") and not any(under(importer, p) for p in API_IMPORTERS):
            wrong.append(f"{importer} imports {imported}: nothing below service/api imports it")
        if under(imported, "workers") and under(importer, "service") and importer not in WORKER_IMPORTERS:
            wrong.append(f"{importer} imports {imported}: service/ starts workers only from the CLI")
        for low, high, why in FORBIDDEN:
            if under(importer, low) and under(imported, high):
                wrong.append(f"{importer} imports {imported}: {why}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, imported in import_edges():
        a, b = package(importer), package(imported)
        if a != b and a != "service" and b != "service":
            graph[a].add(b)
    cycles = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if a < b and a in graph.get(b, set()) and frozenset({a, b}) not in KNOWN_CYCLES:
                cycles.append(f"{a} <-> {b}")
    # Longer cycles: a package that reaches itself through others (the pairs above excepted).
    for start in sorted(graph):
        seen: set[str] = set()
        stack = [n for n in graph[start] if frozenset({start, n}) not in KNOWN_CYCLES]
        while stack:
            node = stack.pop()
            if node == start:
                cycles.append(f"{start} reaches itself")
                break
            if node in seen:
                continue
            seen.add(node)
            stack.extend(n for n in graph.get(node, ()) if frozenset({node, n}) not in KNOWN_CYCLES)
    assert not cycles, "\n".join(cycles)


def test_the_known_cycles_still_exist() -> None:
    """An exception that is no longer needed is removed, so that the line holds from then on."""
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, imported in import_edges():
        graph[package(importer)].add(package(imported))
    gone = [
        f"{sorted(pair)} ({owner})"
        for pair, owner in KNOWN_CYCLES.items()
        if not all(b in graph[a] for a in pair for b in pair - {a})
    ]
    assert not gone, "remove from KNOWN_CYCLES: " + ", ".join(gone)


def test_only_units_of_work_commit() -> None:
    found = defaultdict(list)
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit"
            ):
                found[name].append(node.lineno)
    stray = {name: lines for name, lines in found.items() if name not in ALLOWED_COMMITS}
    assert not stray, f"commits outside units of work (flush, and use unit_of_work.after_commit): {stray}"


def test_the_api_process_keeps_nothing_on_app_state_but_the_runtime() -> None:
    writes = []
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and ast.unparse(target.value).endswith("app.state")
                    and target.attr != "runtime"
                ):
                    writes.append(f"{name}:{node.lineno} sets app.state.{target.attr}")
    assert not writes, "\n".join(writes)
