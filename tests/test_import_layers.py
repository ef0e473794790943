"""The package's imports point one way: down the layers written in the README, never around a circle."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cartlift"


def readme_layers(text: str) -> dict[str, int]:
    """Package -> layer, from the table after the ``layers`` marker in the README's development section."""
    section = text.split("<!-- layers:", 1)[1]
    layers: dict[str, int] = {}
    for line in section.splitlines()[1:]:
        m = re.match(r"^\|\s*(\d+)\s*\|\s*([^|]+)\|\s*$", line)
        if m:
            layers.update({name: int(m.group(1)) for name in m.group(2).split()})
        elif layers and not line.startswith("|"):
            break
    return layers


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def imports(tree: ast.AST, *, runtime_only: bool) -> Iterator[str]:
    """The ``cartlift`` modules a module imports (``runtime_only``: not those under ``if TYPE_CHECKING``)."""
    skip: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for child in node.body for n in ast.walk(child))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("cartlift"):
                # "from cartlift.cli import _act" imports the submodule cartlift.cli._act
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    yield sub if sub in MODULES else node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("cartlift"))


def package_of(module: str) -> str | None:
    """The layer unit of a module: ``cartlift.store._tables`` -> ``store``; ``cartlift`` itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(graph: Mapping[str, set[str]], layers: Mapping[str, int]) -> list[str]:
    """Imports of a package on the same or a higher layer (within a package anything goes)."""
    found = []
    for module, targets in sorted(graph.items()):
        own = package_of(module)
        for target in sorted(targets):
            other = package_of(target)
            if own is None or other is None or other == own:
                continue
            if own not in layers or other not in layers:
                found.append(
                    f"{module}: package {own if own not in layers else other!r} has no layer in the README"
                )
            elif layers[other] >= layers[own]:
                found.append(f"{module} (layer {layers[own]}) imports {target} (layer {layers[other]})")
    return found


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph(*, runtime_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module_name(path)] = set(imports(tree, runtime_only=runtime_only))
    return graph


def test_the_readme_names_a_layer_for_every_package() -> None:
    layers = readme_layers((ROOT / "README.md").read_text(encoding="utf-8"))
    packages = {
        p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()
    }
    packages -= {"__init__", "__pycache__"}
    assert packages - set(layers) == set()
    assert layers["events"] < layers["store"] < layers["act"] < layers["serve"] < layers["cli"]


def test_no_package_imports_its_own_layer_or_a_higher_one() -> None:
    layers = readme_layers((ROOT / "README.md").read_text(encoding="utf-8"))
    # every import counts here, type-only ones too: a type from a higher layer is still an arrow up
    assert layer_violations(import_graph(runtime_only=False), layers) == []


def test_no_modules_import_each_other_around_a_circle() -> None:
    assert circles(import_graph(runtime_only=True)) == []


def test_nothing_but_the_cli_imports_the_service() -> None:
    graph = import_graph(runtime_only=False)
    users = {m for m, targets in graph.items() for t in targets if package_of(t) == "serve"}
    assert {package_of(m) for m in users} <= {"serve", "cli"}


# the checks themselves must be able to fail
@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"cartlift.events._a": {"cartlift.store"}}, "layer 2) imports cartlift.store (layer 3)"),
        (
            {"cartlift.analytics._a": {"cartlift.predict._b"}},
            "layer 4) imports cartlift.predict._b (layer 4)",
        ),
        ({"cartlift.coupons._a": {"cartlift.errors"}}, "'coupons' has no layer"),
    ],
)
def test_a_wrong_arrow_is_reported(graph: dict[str, set[str]], expected: str) -> None:
    layers = readme_layers((ROOT / "README.md").read_text(encoding="utf-8"))
    assert any(expected in v for v in layer_violations(graph, layers))


def test_a_circle_is_reported() -> None:
    graph = {
        "cartlift.a": {"cartlift.b"},
        "cartlift.b": {"cartlift.c"},
        "cartlift.c": {"cartlift.a"},
        "cartlift.d": set(),
    }
    assert circles(graph) == [["cartlift.a", "cartlift.b", "cartlift.c"]]
    assert circles({"cartlift.a": {"cartlift.b"}, "cartlift.b": set()}) == []
