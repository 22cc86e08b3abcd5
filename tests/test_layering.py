"""pybpf's layers and what may import what, checked over every module of the installed package.

The layers (the one place they are defined; docs/pipeline.md draws them):
- shared leaves: the compile -> run hand-off and what both sides read. A leaf imports only leaves.
- the front end: parse, resolve probes, check types, lay out resources (the default: every module of
  pybpf not named in another layer). It imports leaves and itself, never the backend or the runtime
  (lowerings receive the IR builder: pybpf/builtins/__init__.py).
- the backend (pybpf.backend): checked program -> IR -> ELF -> ObjectSpec. Front end and leaves.
- the runtime (pybpf.runtime): load, attach, read, print. Leaves and itself only: it runs a
  CompiledProgram and never needs the compiler.
- the drivers: the public API and the library (with pybpf.metrics, its Prometheus collector), the
  CLI, the pass list, the compile cache, and the tools built on the library. They may import
  anything.

Imports are read with `ast`, at any depth. A function-level (lazy) import counts for the layers and,
outside the drivers, for cycles: it is as much a dependency as one at the top, only paid later, and
the old circles hid behind lazy imports (the compile cache's leaf helpers in the module that lazily
imported the whole compiler; probes and listing importing each other). A driver's lazy imports are
left out of the cycle check: drivers defer whole layers on purpose (compiling needs none of the
runtime, a cache hit none of the compiler), and as no other layer imports a driver, such an import
can close a circle only among drivers (pybpf -> pybpf.api -> lazily pybpf.cache -> pybpf for its
version). Imports under `if TYPE_CHECKING:` never run: they count for the layers (a type is
knowledge of the other side) but not for cycles, which is the one thing they exist to avoid.
"""

from __future__ import annotations

import ast
import pkgutil
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOTS = ("pybpf", "pybpf.backend", "pybpf.runtime")   # separate folders in the source tree

LEAVES = (
    "pybpf.program",         # CompiledProgram: the hand-off, with its layouts and ObjectSpec
    "pybpf.types",
    "pybpf.uapi",            # kernel ABI constants
    "pybpf.errors",          # PybpfError
    "pybpf.records",         # @record, the light @dataclass of the modules a cache hit imports
    "pybpf.diskcache",       # the trusted cache folder, atomic writes
    "pybpf.trust",           # who could have written a file: the cache's and headers' checks
    "pybpf.features",        # the Features protocol; runtime.features answers it from the kernel
    "pybpf.printf_format",   # printf formats, checked at compile time, applied at run time
    "pybpf.mapkinds",        # one object per aggregation kind: layout, lowering, decoding, text
    # Kernel and ELF readers: the front end resolves probes with them, the runtime's attach modules
    # read a tracepoint's id and a symbol's file offset with them. They import no front-end module.
    "pybpf.tracefs",
    "pybpf.elfsym",
    "pybpf.cpus",            # the possible CPUs: ncpus and per-CPU layouts alike
)
BACKEND = ("pybpf.backend",)
RUNTIME = ("pybpf.runtime",)
# "pybpf": the package itself, exactly (everything is under it); pybpf.tools: programs on the library
DRIVERS = ("pybpf", "pybpf.api", "pybpf.cli", "pybpf.compiler", "pybpf.cache", "pybpf.metrics")
TOOLS = ("pybpf.tools",)

MAY_IMPORT = {
    "leaf": {"leaf"},
    "front end": {"leaf", "front end"},
    "backend": {"leaf", "front end", "backend"},
    "runtime": {"leaf", "runtime"},
    "driver": {"leaf", "front end", "backend", "runtime", "driver"},
}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_of(module: str) -> str:
    if module in DRIVERS or _within(module, TOOLS):
        return "driver"
    for name, prefixes in (("leaf", LEAVES), ("backend", BACKEND), ("runtime", RUNTIME)):
        if _within(module, prefixes):
            return name
    return "front end"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    lazy: bool          # inside a function: runs when called, not when the module loads
    type_only: bool     # under `if TYPE_CHECKING:`: never runs


def package_modules() -> dict[str, Path]:
    """Every module of pybpf's packages: name -> source file."""
    modules, packages = {}, list(ROOTS)
    while packages:
        package = packages.pop()
        spec = find_spec(package)
        modules[package] = Path(spec.origin)
        for info in pkgutil.iter_modules(spec.submodule_search_locations, package + "."):
            if info.ispkg:
                packages.append(info.name)
            else:
                modules[info.name] = Path(find_spec(info.name).origin)
    return modules


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    is_package = path.name == "__init__.py"
    found = []

    def target(name: str) -> str:
        """`from pybpf.program import X`: the module pybpf.program, not pybpf.program.X."""
        parent = name.rpartition(".")[0]
        return parent if name not in known and parent in known else name

    def visit(node: ast.AST, lazy: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(Import(module, target(a.name), child.lineno, lazy, type_only)
                             for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = module.split(".")[:len(module.split(".")) - child.level + is_package]
                    base = ".".join(parts + ([child.module] if child.module else []))
                for alias in child.names:      # `from pybpf import types`: the module pybpf.types
                    found.append(Import(module, target(f"{base}.{alias.name}"), child.lineno, lazy,
                                        type_only))
            visit(child, lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
                  type_only or _is_type_checking(child))

    visit(ast.parse(path.read_text(), str(path)), False, False)
    return [i for i in found if i.imported in known]


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    modules = package_modules()
    return [i for name, path in sorted(modules.items()) for i in imports_of(name, path, set(modules))]


def test_the_walk_sees_every_package_the_project_ships():
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    shipped = set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])
    walked = set(package_modules())
    assert shipped - {"pybpf.grammar"} <= walked     # the grammar folder holds no Python
    assert {"pybpf.runtime.attach.uprobe", "pybpf.backend.codegen", "pybpf.providers.tracepoint",
            "pybpf.uapi.bpf"} <= walked


def test_the_reader_sees_lazy_and_type_only_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom pybpf import types as T\n"
                      "if TYPE_CHECKING:\n    from pybpf.ast import Node\n"
                      "def f():\n    from pybpf.runtime.printf import format_printf\n")
    known = {"pybpf", "pybpf.types", "pybpf.ast", "pybpf.runtime", "pybpf.runtime.printf"}
    assert [(i.imported, i.lazy, i.type_only) for i in imports_of("pybpf.m", source, known)] == [
        ("pybpf.types", False, False), ("pybpf.ast", False, True), ("pybpf.runtime.printf", True, False)]


def test_layers_import_only_what_they_may(graph):
    crossing = sorted({f"{i.importer} ({layer_of(i.importer)}) -> {i.imported} ({layer_of(i.imported)}), "
                f"line {i.line}{' (lazy)' if i.lazy else ''}"
                        for i in graph if layer_of(i.imported) not in MAY_IMPORT[layer_of(i.importer)]})
    assert crossing == []


def test_the_layers_are_what_they_say():
    assert layer_of("pybpf.runtime.attach.tracepoint") == "runtime"
    assert layer_of("pybpf.backend.codegen") == "backend"
    assert layer_of("pybpf.uapi.bpf") == layer_of("pybpf.tracefs") == "leaf"
    assert layer_of("pybpf.semantic") == layer_of("pybpf.builtins.output") == "front end"
    assert layer_of("pybpf.programs") == "front end"      # a prefix names a module, not a spelling
    assert layer_of("pybpf") == layer_of("pybpf.cli") == layer_of("pybpf.tools.opensnoop") == "driver"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-imports."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(v: str) -> None:
        # Iterative: a recursion per module would do, but the graph may grow past the default limit.
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1 or node in edges.get(node, ()):
                        components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return components


def test_cycles_are_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph):
    edges: dict[str, set[str]] = {}
    for i in graph:
        if (not i.type_only and i.imported != i.importer
                and not (i.lazy and layer_of(i.importer) == "driver")):
            edges.setdefault(i.importer, set()).add(i.imported)
    assert _cycles(edges) == []
