"""Imports run one way: each module of ``src/marlkit`` imports only modules of its own layer and of the floors below
it, and no modules import each other in a loop. Every ``import`` counts — at the top, inside a function, under
``if TYPE_CHECKING:`` — read with ``ast``, so nothing is imported to check it. The table is docs/architecture.md's.
(A registry that names a constructor as a ``"module:attribute"`` string and imports it on first use is not an
import: that is how a lower floor lists what lives above it without depending on it.)"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "marlkit"

#: ``(floor, layer, paths)``, lowest floor first; a path is relative to src/marlkit, a folder's ends with "/". A
#: module may import modules of its own layer and of lower floors; layers that share a floor do not import each other.
LAYERS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (0, "core", ("core/",)),
    (1, "envs", ("envs/",)),
    (1, "ops", ("ops/",)),
    (1, "nn", ("nn/",)),
    (1, "metrics", ("metrics/",)),
    (2, "data", ("data/",)),
    (3, "collect", ("collect.py",)),
    (4, "algorithms", ("algorithms/",)),
    (4, "llm", ("llm/",)),
    (5, "population", ("population/",)),
    (5, "distributed", ("distributed/",)),
    (6, "experiment", ("experiment/",)),
    (7, "lifelong", ("lifelong/",)),
    (8, "entry points", ("__init__.py", "__main__.py", "cli.py")),
)


class Import(NamedTuple):
    source: str
    """The importing module (``marlkit.algorithms.teams``)."""
    target: str
    """The imported module of the package (``marlkit.core.rundir``)."""
    file: str
    """The importing file, relative to the repository root."""
    line: int


def modules(package: Path) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under ``package`` (a package's ``__init__.py`` is the package)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(package: Path) -> Iterator[Import]:
    """Every import of a module of ``package`` by a module of it, wherever in the file it stands."""
    known = modules(package)
    root = package.parent.parent

    def module_of(name: str) -> str | None:
        while name not in known and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in known else None

    for source, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package, up level - 1
                    here = source.split(".") if is_package else source.split(".")[:-1]
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                # `from pkg import mod` imports the module pkg.mod; `from pkg import name` the package pkg
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            targets = {module_of(name) for name in names} - {None, source}
            for target in sorted(t for t in targets if t is not None):
                yield Import(source, target, str(path.relative_to(root)), node.lineno)


def layer_of(module: str, package: Path, layers: tuple[tuple[int, str, tuple[str, ...]], ...]) -> tuple[int, str]:
    """``(floor, layer)`` of a module; a module in no layer fails, naming the table to add it to."""
    path = modules(package)[module].relative_to(package).as_posix()
    for floor, name, paths in layers:
        if any(path.startswith(p) if p.endswith("/") else path == p for p in paths):
            return floor, name
    raise AssertionError(
        f"{module} ({path}) is in no layer: add it to LAYERS in tests/unit/test_layers.py and to "
        f"the table in docs/architecture.md"
    )


def upward_imports(package: Path, layers: tuple[tuple[int, str, tuple[str, ...]], ...] = LAYERS) -> list[str]:
    """One line per import that breaks the layer rule: file, line, what imports what, and the rule broken."""
    problems = []
    for imp in imports(package):
        (floor, layer), (their_floor, theirs) = (
            layer_of(imp.source, package, layers),
            layer_of(imp.target, package, layers),
        )
        if layer == theirs or their_floor < floor:
            continue
        why = (
            "a layer imports only its own modules and the floors below it"
            if their_floor > floor
            else "layers that share a floor do not import each other"
        )
        problems.append(
            f"{imp.file}:{imp.line}: {imp.source} ({layer}, floor {floor}) imports {imp.target} "
            f"({theirs}, floor {their_floor}): {why}"
        )
    return problems


def import_cycles(package: Path) -> list[str]:
    """One line per set of modules that import each other in a loop, with the imports that tie them (file:line)."""
    edges: dict[str, dict[str, Import]] = {name: {} for name in modules(package)}
    for imp in imports(package):
        edges[imp.source].setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return [_describe(c, edges) for c in cycles]


def _describe(component: list[str], edges: dict[str, dict[str, Import]]) -> str:
    """The shortest loop through the component's first module, import by import; then every module tied in."""
    start, inside = component[0], set(component)
    came: dict[str, Import] = {}  # module -> the import through which the search first reached it
    queue = deque([start])
    while start not in came:  # breadth first within the component, until the search is back at the start
        v = queue.popleft()
        for imp in edges[v].values():
            if imp.target in inside and imp.target not in came:
                came[imp.target] = imp
                queue.append(imp.target)
    loop = [came[start]]
    while loop[-1].source != start:
        loop.append(came[loop[-1].source])
    text = "import cycle: " + "; ".join(f"{i.file}:{i.line} {i.source} -> {i.target}" for i in reversed(loop))
    if len(component) > len(loop):
        text += f" (modules that import each other in all: {', '.join(component)})"
    return text


# ------------------------------------------------------------------------------------------------------ the tests
def test_no_module_imports_from_a_higher_layer() -> None:
    problems = upward_imports(PACKAGE)
    assert not problems, "imports that run up the layers (docs/architecture.md):\n" + "\n".join(problems)


def test_no_modules_import_each_other_in_a_loop() -> None:
    cycles = import_cycles(PACKAGE)
    assert not cycles, "\n".join(cycles)


def test_the_table_is_the_one_in_docs_architecture() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*([a-z ]+?)\s*\|\s*([^|]+?)\s*\|", text, flags=re.MULTILINE)
    documented = [(int(floor), layer, tuple(re.findall(r"`([^`]+)`", paths))) for floor, layer, paths in rows]
    assert sorted(documented) == sorted(LAYERS)


def test_a_planted_upward_import_and_a_cycle_are_reported(tmp_path: Path) -> None:
    package = tmp_path / "src" / "marlkit"
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/errors.py": "def f():\n    from marlkit.algorithms import registry  # lazy, still an import\n",
        "algorithms/__init__.py": "",
        "algorithms/registry.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import ppo\n",
        "algorithms/ppo.py": "from marlkit.algorithms.registry import X\n",
        "envs/__init__.py": "import marlkit.nn.mlp\n",
        "nn/__init__.py": "",
        "nn/mlp.py": "",
    }
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    layers = (
        (0, "core", ("core/",)),
        (1, "envs", ("envs/",)),
        (1, "nn", ("nn/",)),
        (4, "algorithms", ("algorithms/",)),
        (6, "entry points", ("__init__.py",)),
    )
    assert upward_imports(package, layers) == [
        "src/marlkit/core/errors.py:2: marlkit.core.errors (core, floor 0) imports marlkit.algorithms.registry "
        "(algorithms, floor 4): a layer imports only its own modules and the floors below it",
        "src/marlkit/envs/__init__.py:1: marlkit.envs (envs, floor 1) imports marlkit.nn.mlp (nn, floor 1): layers "
        "that share a floor do not import each other",
    ]
    assert import_cycles(package) == [
        "import cycle: src/marlkit/algorithms/ppo.py:1 marlkit.algorithms.ppo -> marlkit.algorithms.registry; "
        "src/marlkit/algorithms/registry.py:3 marlkit.algorithms.registry -> marlkit.algorithms.ppo",
    ]
