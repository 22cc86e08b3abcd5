"""Expand-macros pass, between parsing and resolving probes: every call of a preamble macro is
replaced by its body, hygienically, as bpftrace 0.26 documents.

    macro add_one(x) { x + 1 }
    macro bump($a, @b) { $a += 1; @b += 1; }
    BEGIN { $a = 10; @b = 5; bump($a, @b); print(add_one($a)); }       // prints 12

A parameter `$a` takes a variable and `@b` a map (each may be changed by the body); `x` takes
any expression, inserted wherever `x` appears (evaluated as often as it appears). The body sees
only what it is given: any other map, or a variable it does not assign itself, is an error, and
the variables it assigns are its own (renamed, so they never meet the caller's). A macro of no
parameters may be called bare (`one` for `one()`). Used as a value, a macro's body must be one
expression; called as a statement, its statements take the call's place.
"""

from __future__ import annotations

import itertools

from pybpf import ast
from pybpf.diagnostics import Diagnostics
from pybpf.records import replace

MAX_DEPTH = 32        # macros calling macros: deeper than this is taken for recursion


class _Refused(Exception):
    """A call that cannot expand; already reported."""


def _map_children(node, fn):
    """node rebuilt with fn applied to each child node; fn may return a tuple of statements in a
    statement list, spliced in its place."""
    changes = {}
    for name in node.__slots__:
        if name == "span":
            continue
        value = getattr(node, name)
        if isinstance(value, tuple):
            out = []
            for item in value:
                if not hasattr(item, "span"):
                    out.append(item)
                    continue
                new = fn(item)
                out.extend(new if isinstance(new, tuple) else (new,))
            if any(a is not b for a, b in itertools.zip_longest(out, value)):
                changes[name] = tuple(out)
        elif hasattr(value, "span"):
            new = fn(value)
            if new is not value:
                changes[name] = new
    return replace(node, **changes) if changes else node


class _Expander:
    def __init__(self, macros: dict[str, ast.Macro], diags: Diagnostics):
        self.macros, self.diags = macros, diags
        self.expansions = itertools.count(1)

    def error(self, message: str, span) -> None:
        self.diags.error(message, span)
        raise _Refused

    # -- walking the program ---------------------------------------------------------------------

    def node(self, n, depth: int = 0):
        """n with every macro call below it expanded; a statement may become several."""
        if isinstance(n, ast.ExprStatement):
            macro = self.called(n.expr)
            if macro is not None:
                return self.statements(macro, n.expr, depth)
        if isinstance(n, (ast.Call, ast.Builtin)):
            macro = self.called(n)
            if macro is not None:
                return self.value(macro, n, depth)
        return _map_children(n, lambda c: self.node(c, depth))

    def called(self, e) -> ast.Macro | None:
        if isinstance(e, ast.Call):
            return self.macros.get(e.name)
        if isinstance(e, ast.Builtin):
            macro = self.macros.get(e.name)
            return macro if macro is not None and not macro.params else None
        return None

    def statements(self, macro: ast.Macro, call, depth: int) -> tuple:
        body = self.expand(macro, call, depth)
        return tuple(s for stmt in body for s in _as_tuple(self.node(stmt, depth + 1)))

    def value(self, macro: ast.Macro, call, depth: int):
        body = self.expand(macro, call, depth)
        if len(body) != 1 or not isinstance(body[0], ast.ExprStatement):
            self.error(f"macro {macro.name} is used as a value, but its body is not one expression "
                       "(block expressions are not supported yet)", call.span)
        return self.node(body[0].expr, depth + 1)

    # -- one expansion ---------------------------------------------------------------------------

    def expand(self, macro: ast.Macro, call, depth: int) -> tuple:
        """macro's body for this call: parameters bound, its own variables renamed."""
        if depth >= MAX_DEPTH:
            self.error(f"macro {macro.name}: expansion deeper than {MAX_DEPTH} (a macro that calls "
                       "itself?)", call.span)
        args = call.args if isinstance(call, ast.Call) else ()
        if len(args) != len(macro.params):
            self.error(f"macro {macro.name} takes {len(macro.params)} argument"
                       f"{'' if len(macro.params) == 1 else 's'} ({len(args)} provided)", call.span)
        variables, maps, exprs = {}, {}, {}
        for param, arg in zip(macro.params, args):
            if param.startswith("$"):
                if not isinstance(arg, ast.Variable):
                    self.error(f"macro {macro.name} expects a variable for {param}", arg.span)
                variables[param] = arg.name
            elif param.startswith("@"):
                if not isinstance(arg, ast.Map) or arg.keys is not None:
                    self.error(f"macro {macro.name} expects a map for {param}", arg.span)
                maps[param] = arg.name
            else:
                exprs[param] = arg
        if not macro.hygienic:
            variables.update((n.name, n.name) for n in _walk_all(macro.body)
                             if isinstance(n, ast.Variable) and n.name not in variables)
            maps.update((n.name, n.name) for n in _walk_all(macro.body)
                        if isinstance(n, ast.Map) and n.name not in maps)
        own = {name for name in map(_declared, _walk_all(macro.body))
               if name is not None and name not in variables}
        suffix = f"{macro.name}{next(self.expansions)}"

        def bind(n):
            if isinstance(n, ast.Variable):
                if n.name in variables:
                    return replace(n, name=variables[n.name])
                if n.name not in own:
                    self.error(f"macro {macro.name} reads {n.name}, which it neither assigns nor "
                               "takes as a parameter", n.span)
                return replace(n, name=f"{n.name}.{suffix}")
            if isinstance(n, ast.Map):
                if n.name not in maps:
                    self.error(f"macro {macro.name} uses the map {n.name}, which is not one of its "
                               "parameters", n.span)
                return _map_children(replace(n, name=maps[n.name]), bind)
            if isinstance(n, ast.Builtin) and n.name in exprs:
                return exprs[n.name]
            return _map_children(n, bind)

        return tuple(bind(s) for s in macro.body)


def _declared(n) -> str | None:
    """The variable that statement n gives a value: an assignment's, a `let`'s, a for-loop's."""
    if isinstance(n, ast.Assign):
        return n.target.name if isinstance(n.target, ast.Variable) else None
    if isinstance(n, (ast.VarDecl, ast.ForRange, ast.ForMap)):
        return n.var.name
    return None


def _as_tuple(x) -> tuple:
    return x if isinstance(x, tuple) else (x,)


def _walk_all(nodes):
    for n in nodes:
        yield from ast.walk(n)


def expand_macros(program: ast.Script, diags: Diagnostics) -> ast.Script:
    """The program with its macros expanded (and dropped); errors go to diags."""
    if not program.macros:
        return program
    macros: dict[str, ast.Macro] = {}
    for macro in program.macros:
        if macro.name in macros:
            diags.error(f"macro {macro.name} is defined twice", macro.span)
        if len(set(macro.params)) != len(macro.params):
            diags.error(f"macro {macro.name}: a parameter is named twice", macro.span)
        macros[macro.name] = macro
    expander = _Expander(macros, diags)
    probes = []
    for probe in program.probes:
        try:
            probes.append(expander.node(probe))
        except _Refused:
            probes.append(probe)
    return replace(program, probes=tuple(probes), macros=())
