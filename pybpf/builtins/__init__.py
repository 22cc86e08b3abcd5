"""The builtins and functions of the language: one entry per name, each holding its arity, its type
rule and its lowering side by side (ply's built-in/*.c is the model).

    entry = builtins.identifier("pid")     # Builtin(name='pid', kind=Kind.IDENTIFIER, ...)
    t = entry.check(checker, node)         # in the type checker: its type, or None after an error
    value = entry.lower(builder, node)     # in the code generator: its ir.Value

One module per family (task.py, clock.py, output.py, ...); each lists its entries in `BUILTINS`.
Adding a builtin is one entry in a family module and its tests; adding a family, one module and one
name in FAMILIES below.

A rule receives the type checker (pybpf.semantic.TypeChecker) and uses its error/expr/set; a
lowering receives the code generator's FunctionBuilder (pybpf.backend.codegen) and builds IR only
through it (its builder `b`, `constant`, `helper`, `alloca`, ...). So this package never imports
llvmlite or the backend, and the type checker can import it on a compile-cache miss without loading
LLVM.
"""

from __future__ import annotations

from pybpf import ast
from pybpf.builtins import (aggregations, arguments, clock, cpu, formatted, integers, kernel, maps,
                            output, probe, rand, stacks, strings, task, unsafe)
from pybpf.builtins.entry import Aggregation, Builtin, Kind

FAMILIES = (task, cpu, clock, rand, probe, strings, integers, formatted, output, unsafe, maps,
            aggregations, stacks, arguments, kernel)

ENTRIES = tuple(entry for family in FAMILIES for entry in family.BUILTINS)

IDENTIFIERS: dict[str, Builtin] = {e.name: e for e in ENTRIES if isinstance(e, Builtin)
                                   and e.kind is Kind.IDENTIFIER and not e.pattern}
# Identifiers named by a pattern rather than one name (arg0, arg1, ...).
PATTERNS = tuple(e for e in ENTRIES if isinstance(e, Builtin) and e.pattern)
FUNCTIONS: dict[str, Builtin] = {
    e.name: e for e in ENTRIES if isinstance(e, Builtin) and e.kind is Kind.FUNCTION}
AGGREGATIONS: dict[str, Aggregation] = {e.name: e for e in ENTRIES if isinstance(e, Aggregation)}


def identifier(name: str) -> Builtin | None:
    """The entry of builtin identifier `name` (pid, comm, arg3, ...), or None."""
    entry = IDENTIFIERS.get(name)
    if entry is None:
        entry = next((p for p in PATTERNS if p.pattern.fullmatch(name)), None)
    return entry


def function(name: str) -> Builtin | None:
    """The entry of function `name` (printf, str, ...), or None. Aggregations are apart: they are
    called only on the right of a map assignment (see `aggregation`)."""
    return FUNCTIONS.get(name)


def aggregation(name: str) -> Aggregation | None:
    return AGGREGATIONS.get(name)


def needs_tracing_program(node) -> bool:
    """Whether node, or a node below it, calls a function only BPF tracing programs have (the
    entries marked tracing_program)."""
    return any(isinstance(n, ast.Call) and (entry := function(n.name)) is not None and
               entry.tracing_program for n in ast.walk(node))


def reads_context(node) -> bool:
    """Whether node, or a node below it, reads the program's context (`args`, `ctx`, `kstack`...:
    the entries marked reads_context)."""
    for n in ast.walk(node):
        entry = identifier(n.name) if isinstance(n, ast.Builtin) else \
            function(n.name) if isinstance(n, ast.Call) else None
        if entry is not None and entry.reads_context:
            return True
    return False
