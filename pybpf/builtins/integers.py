"""Integers: bswap, and the bool constants true and false."""

from __future__ import annotations

from pybpf import types as T
from pybpf.builtins.entry import function, identifier, typed
from pybpf.checked import BOOL, is_int


def check_bswap(c, e):
    """bswap(n): n's bytes reversed, an unsigned integer as wide as n (a pointer is 8 bytes)."""
    t = c.expr(e.args[0])
    if t is None:
        return None
    if not is_int(t):
        c.error(f"bswap() expects an integer, got {t}", e.args[0].span)
        return None
    return T.IntType(t.size if isinstance(t, T.IntType) else 8, False)


def lower_bswap(g, e):
    size = g.type_of(e).size
    value = g.expr(e.args[0])
    if size == 1:
        return g.b.and_(value, g.constant(0xFF))
    narrow = value if size == 8 else g.b.trunc(value, g.integer_type(size))
    swapped = g.b.bswap(narrow)
    return swapped if size == 8 else g.b.zext(swapped, g.integer_type(8))


BUILTINS = (
    function("bswap", (1, 1), check_bswap, lower_bswap),
    identifier("true", typed(BOOL), lambda g, e: g.constant(1)),
    identifier("false", typed(BOOL), lambda g, e: g.constant(0)),
)
