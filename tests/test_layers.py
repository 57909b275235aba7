"""The package's import structure: no import circle, and imports only go down the layers.

Every module of ``twisted_stream`` is parsed (``ast``, so imports under ``TYPE_CHECKING`` and
inside functions count too) and each import of another module of the package is an edge.
The layers, lowest first, as docs/guide/design.rst documents them; a module may import
from its own layer or lower ones.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator, Mapping

import pytest

import twisted_stream

LAYERS: list[set[str]] = [
    {"_errors", "_format", "_settings", "_types"},
    {"_http"},
    {"_engine"},
    {"_sources"},
    {"_backends"},
    {"_events", "_files"},
    {"_proxy"},
    {"_ops"},
    {"__init__"},  # twisted_stream itself: the public API
    {"_demo"},  # the demo uses the public API only
    {"tap", "testing"},  # the testing module of our users: beside the plugin entry
]

PACKAGE = pathlib.Path(twisted_stream.__file__).parent
Graph = Mapping[str, set[str]]


def module_names() -> dict[str, pathlib.Path]:
    """Dotted name of every module of the package (a package is its ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["twisted_stream", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: pathlib.Path, known: set[str]) -> Iterator[str]:
    """The package's modules that module ``name`` imports, wherever the import stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            if target in known and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    names = module_names()
    return {name: set(imports_of(name, path, set(names))) for name, path in names.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/guide/design.rst")


def upward_imports(graph: Graph) -> list[str]:
    """Imports of a higher layer, as ``importer -> imported`` lines."""
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )


def find_cycle(graph: Graph) -> list[str] | None:
    """One import circle (its modules in order, the first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_module_has_a_layer() -> None:
    """Each module belongs to a documented layer (a new folder must be placed in the order)."""
    for module in module_names():
        layer_of(module)


def test_no_import_circle() -> None:
    """No two modules of the package import each other, directly or through others."""
    assert find_cycle(import_graph()) is None


def test_imports_only_go_down_the_layers() -> None:
    """No module imports from a layer above its own."""
    assert upward_imports(import_graph()) == []


def test_the_checks_find_a_circle_and_an_upward_import() -> None:
    """The checks themselves fail on what they guard against (a circle through three
    modules; the engine importing the site)."""
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(circle) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    upward = {"twisted_stream._engine._stream": {"twisted_stream._ops._site"}}
    assert upward_imports(upward) == [
        "twisted_stream._engine._stream -> twisted_stream._ops._site"
    ]


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("twisted_stream._events._channel", "twisted_stream._events._sse"),
        ("twisted_stream._engine._stream", "twisted_stream._http._twisted"),
        ("twisted_stream._demo._site", "twisted_stream._demo._events"),
        ("twisted_stream.tap", "twisted_stream._demo"),
    ],
)
def test_relative_imports_are_resolved(module: str, expected: str) -> None:
    """The graph sees relative imports (``from .._http._twisted import ...``)."""
    assert expected in import_graph()[module]
