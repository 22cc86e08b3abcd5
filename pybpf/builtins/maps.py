"""Functions on a whole map or one of its elements: clear, zero, delete, has_key, len."""

from __future__ import annotations

from pybpf import ast
from pybpf.builtins.entry import function
from pybpf.checked import INT, VOID
from pybpf.mapkinds import kind_for
from pybpf.program import EventKind
from pybpf.uapi.bpf import BpfFunc


def map_argument(c, e):
    """The map info of a call's map argument (its first), or None after reporting why there is
    none."""
    arg = e.args[0]
    if not isinstance(arg, ast.Map):
        c.error(f"{e.name}() expects a map argument", arg.span)
        return None
    info = c.result.maps.get(arg.name)
    if info is None:
        c.error(f"Undefined map: {arg.name}", arg.span)
    return info


def check_whole_map(c, e):
    if map_argument(c, e) is None:
        return None
    if e.args[0].keys is not None:
        c.error(f"{e.name}() expects a whole map, without a key", e.args[0].span)
        return None
    return VOID


def deleted_element(call) -> ast.Map:
    """delete(@m, k), as bpftrace 0.22+ writes it, is delete(@m[k])."""
    if len(call.args) == 2:
        return keyed_element(call)
    return call.args[0]


def check_delete(c, e):
    info = map_argument(c, e)
    if info is None:
        return None
    if len(e.args) == 2 and e.args[0].keys is not None:
        c.error("delete() expects a map without a key, then the key: delete(@m, k)",
                e.args[0].span)
        return None
    arg = deleted_element(e)
    if arg.keys is None and info.key:
        c.error("delete() expects a map element, like @m[key]", arg.span)
        return None
    keys = c.map_keys(arg)
    if keys is not None:
        c.merge_keys(info, keys, arg)
    return VOID


def keyed_element(call) -> ast.Map:
    """has_key(@m, k) as the element @m[k] it asks about; a tuple `k` is the keys of a map with
    several (has_key(@m, (1, 2)) asks about @m[1, 2]). Built the same way when checking and
    lowering, over the call's own key expressions."""
    m, key = call.args
    keys = key.elements if isinstance(key, ast.Tuple) else (key,)
    return ast.Map(m.name, keys, call.span)


def keyed_map(c, e, with_key: str, verb: str):
    """The info of a call's map argument, a whole map with keys and no buckets (has_key, len),
    or None after reporting why not: with_key when a key is given, verb what the call would do
    with a hist or lhist map."""
    info = map_argument(c, e)
    if info is None:
        return None
    arg = e.args[0]
    if arg.keys is not None:
        c.error(with_key, arg.span)
        return None
    if not info.key:
        c.error(f"{e.name}() expects a map with keys; {info.name} has none", arg.span)
        return None
    if kind_for(info.kind).has_buckets:
        c.error(f"{e.name}() cannot {verb} {info.kind.value}() map {info.name}: its buckets are "
                "keys of their own", arg.span)
        return None
    return info


def check_has_key(c, e):
    info = keyed_map(c, e, "has_key() expects a map without a key, then the key: has_key(@m, k)",
                     "look into")
    if info is None:
        return None
    element = keyed_element(e)
    keys = c.map_keys(element)
    if keys is not None:
        c.merge_keys(info, keys, element)
    return INT


def check_len(c, e):
    """len(@m): the elements of a map with keys, counted in the kernel (bpf_for_each_map_elem
    returns how many it visited)."""
    if keyed_map(c, e, "len() expects a whole map, without a key", "count the keys of") is None:
        return None
    return INT


def lower_has_key(g, e):
    element = keyed_element(e)
    spec = g.plan.maps[element.name]
    return g.from_bool(g.is_present(g.lookup(spec.symbol, g.key(spec, element))))


def map_event(kind: EventKind):
    """A lowering that asks user space to act on the whole map (the runtime clears or zeroes it)."""
    def lower(g, e):
        g.emit_event(kind, g.plan.map_index(e.args[0].name))
        return g.constant(0)
    return lower


def lower_delete(g, e):
    m = deleted_element(e)
    spec = g.plan.maps[m.name]
    g.helper(BpfFunc.map_delete_elem, g.map_ptr(spec.symbol), g.key(spec, m))
    return g.constant(0)


BUILTINS = (
    function("clear", (1, 1), check_whole_map, map_event(EventKind.CLEAR)),
    function("zero", (1, 1), check_whole_map, map_event(EventKind.ZERO)),
    function("delete", (1, 2), check_delete, lower_delete),
    function("has_key", (2, 2), check_has_key, lower_has_key),
    function("len", (1, 1), check_len, lambda g, e: g.map_length(g.plan.maps[e.args[0].name])),
)
