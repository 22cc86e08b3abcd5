"""str(): a string from a pointer, or a string cut short."""

from __future__ import annotations

from pybpf import types as T
from pybpf.builtins.entry import function
from pybpf.checked import is_int
from pybpf.uapi.bpf import BpfFunc


def check_str(c, e):
    c.in_str_call = True        # str($1) reads a positional parameter as text
    try:
        t = c.expr(e.args[0])
    finally:
        c.in_str_call = False
    if t is None:
        return None
    size = T.STRING_SIZE
    if len(e.args) == 2:
        n = c.constant_int(e.args[1])
        if n is None:
            return None
        if not 1 <= n <= T.STRING_SIZE * 4:
            c.error(f"str() length must be between 1 and {T.STRING_SIZE * 4}", e.args[1].span)
            return None
        size = n + 1        # n characters and the NUL, as bpftrace: str(p, 4) -> "/etc"
    if isinstance(t, T.StringType):
        return T.StringType(min(t.size, size)) if len(e.args) == 2 else t
    if not is_int(t):
        c.error(f"str() expects a pointer or a string, got {t}", e.args[0].span)
        return None
    return T.StringType(size)


def lower_str(g, e):
    t = g.type_of(e)
    arg_t = g.type_of(e.args[0])
    value = g.expr(e.args[0])
    buf = g.alloca(t.size, "str")
    if isinstance(arg_t, T.StringType):
        g.copy(buf, t.size, value, min(arg_t.size, t.size))
        if t.size < arg_t.size:
            # Slots copy 8 bytes at a time: terminate the cut string explicitly.
            g.b.store(g.constant(0, bits=8), g.gep(buf, t.size - 1))
        return buf
    g.zero(buf, t.size)
    g.helper(BpfFunc.probe_read_str, buf, g.constant(t.size), g.b.inttoptr(value, g.pointer_type))
    return buf


BUILTINS = (
    function("str", (1, 2), check_str, lower_str),
)
