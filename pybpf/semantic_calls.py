"""Type rules for the functions: printf (against its format), str, exit, time, and the map
functions print, clear, zero and delete.

Mixed into pybpf.semantic.TypeChecker.
"""

from __future__ import annotations

from pybpf import ast
from pybpf import types as T
from pybpf.checked import (AGGREGATIONS, MAP_FUNCTIONS, MAX_PRINTF_ARGS, VOID, is_int)
from pybpf.runtime.printf import PrintfFormatError, parse_printf

class CallChecks:
    def expr_Call(self, e: ast.Call):
        if e.name in AGGREGATIONS:
            self.error(f"{e.name}() should be directly assigned to a map", e.span)
            return None
        if e.name in MAP_FUNCTIONS:
            return self.map_function(e)
        handler = getattr(self, "call_" + e.name, None)
        if handler is None:
            self.error(f"Unknown function: {e.name}", e.span)
            return None
        return handler(e)

    def arity(self, e: ast.Call, low: int, high: int) -> bool:
        n = len(e.args)
        if low <= n <= high:
            return True
        expected = str(low) if low == high else f"{low} to {high}"
        self.error(f"{e.name}() requires {expected} argument{'s' if high != 1 else ''} "
                   f"({n} provided)", e.span)
        return False

    def map_function(self, e: ast.Call):
        if not self.arity(e, 1, 1):
            return None
        (arg,) = e.args
        if e.name == "print" and not isinstance(arg, ast.Map):
            t = self.expr(arg)
            if t is not None and not isinstance(t, (T.IntType, T.StringType, T.TupleType,
                                                    T.ProbeType)):
                self.error(f"print() cannot print a value of type {t}", arg.span)
            return VOID
        if not isinstance(arg, ast.Map):
            self.error(f"{e.name}() expects a map argument", arg.span)
            return None
        info = self.result.maps.get(arg.name)
        if info is None:
            self.error(f"Undefined map: {arg.name}", arg.span)
            return None
        if e.name == "delete":
            if arg.keys is None and info.key:
                self.error("delete() expects a map element, like @m[key]", arg.span)
                return None
            keys = self.map_keys(arg)
            if keys is not None:
                self.merge_keys(info, keys, arg)
        elif arg.keys is not None:
            self.error(f"{e.name}() expects a whole map, without a key", arg.span)
            return None
        return VOID

    def call_printf(self, e: ast.Call):
        if not e.args or not isinstance(e.args[0], ast.String):
            self.error("printf() expects a format string literal as its first argument", e.span)
            return None
        fmt = e.args[0]
        self.set(fmt, T.StringType(len(fmt.value) + 1))
        try:
            conversions = parse_printf(fmt.value.decode("utf-8", errors="replace"))
        except PrintfFormatError as err:
            self.error(f"printf: {err}", fmt.span)
            return None
        args = e.args[1:]
        if len(args) > MAX_PRINTF_ARGS:
            self.error(f"printf: too many arguments ({len(args)}, at most {MAX_PRINTF_ARGS})",
                       e.span)
            return None
        if len(args) != len(conversions):
            more = "Too many" if len(args) > len(conversions) else "Not enough"
            self.error(f"printf: {more} arguments for format string ({len(args)} supplied, "
                       f"{len(conversions)} expected)", e.span)
            return None
        for arg, conv in zip(args, conversions):
            t = self.expr(arg)
            if t is None:
                continue
            wants_string = conv.char == "s"
            ok = (isinstance(t, (T.StringType, T.ProbeType, T.TupleType))
                  if wants_string else is_int(t))
            if not ok:
                self.error(f"printf: %{conv.char} specifier expects a value of type "
                           f"{'string' if wants_string else 'integer'} (got {t})", arg.span)
        return VOID

    def call_str(self, e: ast.Call):
        if not self.arity(e, 1, 2):
            return None
        self.in_str_call = True
        try:
            t = self.expr(e.args[0])
        finally:
            self.in_str_call = False
        if t is None:
            return None
        size = T.STRING_SIZE
        if len(e.args) == 2:
            n = self.constant_int(e.args[1])
            if n is None:
                return None
            if not 1 <= n <= T.STRING_SIZE * 4:
                self.error(f"str() length must be between 1 and {T.STRING_SIZE * 4}",
                           e.args[1].span)
                return None
            size = n + 1        # n characters and the NUL, as bpftrace: str(p, 4) -> "/etc"
        if isinstance(t, T.StringType):
            return T.StringType(min(t.size, size)) if len(e.args) == 2 else t
        if not is_int(t):
            self.error(f"str() expects a pointer or a string, got {t}", e.args[0].span)
            return None
        return T.StringType(size)

    def call_exit(self, e: ast.Call):
        return VOID if self.arity(e, 0, 0) else None

    def call_time(self, e: ast.Call):
        if not self.arity(e, 0, 1):
            return None
        if e.args and not isinstance(e.args[0], ast.String):
            self.error("time() expects a format string literal", e.args[0].span)
            return None
        if e.args:
            self.set(e.args[0], T.StringType(len(e.args[0].value) + 1))
        return VOID
