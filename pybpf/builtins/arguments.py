"""The script's named arguments: getopt(), as bpftrace 0.24+.

    pybpf syscount.bt -- --sysname            getopt("sysname")      -> true
    pybpf opensnoop.bt -- --depth=10          getopt("depth", 35)    -> 10 (35 when not given)

The default's type is the option's type: an integer, a string or a bool; without a default the
option is a bool. A bool option is true when given bare or as true/1, false as false/0. The value
is known when the script compiles (the arguments are part of the compile), so it lowers to a
constant.
"""

from __future__ import annotations

from pybpf import ast
from pybpf import types as T
from pybpf.builtins.entry import function
from pybpf.checked import BOOL, INT, param_int

_TRUE, _FALSE = ("true", "1", ""), ("false", "0")


def named_arguments(params) -> dict[str, str]:
    """`--name=value` and `--name` (value "") of the script's arguments, by name; the last wins."""
    named = {}
    for param in params:
        name, _, value = param[2:].partition("=")
        named[name] = value
    return named


def option_value(c, e) -> int | bool | bytes | None:
    """The value of getopt call e: what the command line gives, else the default; None after
    reporting an error."""
    name = e.args[0].value.decode("utf-8", "surrogateescape")
    default = e.args[1] if len(e.args) == 2 else None
    given = named_arguments(c.result.named_params).get(name)
    kind = _kind(default)
    if given is None:
        if kind is bool:
            return default is not None and default.name == "true"
        return default.value if kind is bytes else c.fold(default)
    if kind is bytes:
        return given.encode("utf-8", "surrogateescape")
    if kind is bool:
        if given.lower() in _TRUE + _FALSE:
            return given.lower() in _TRUE
        c.error(f"--{name}={given}: getopt(\"{name}\") is a bool option (true, false, 1 or 0)", e.span)
        return None
    value = param_int(given) if given else None
    if value is None:
        c.error(f"--{name}={given}: getopt(\"{name}\") expects an integer", e.span)
    return value


def _kind(default) -> type:
    if default is None or (isinstance(default, ast.Builtin) and default.name in ("true", "false")):
        return bool
    return bytes if isinstance(default, ast.String) else int


def check_getopt(c, e):
    if not isinstance(e.args[0], ast.String):
        c.error("getopt() expects the option's name as a string literal", e.args[0].span)
        return None
    c.set(e.args[0], T.StringType(len(e.args[0].value) + 1))
    if len(e.args) == 2:
        default = e.args[1]
        kind = _kind(default)
        if kind is int and c.constant_int(default) is None:
            return None
        c.expr(default)
    value = option_value(c, e)
    if value is None:
        return None
    c.result.option_values[e] = value
    kind = _kind(e.args[1] if len(e.args) == 2 else None)
    if kind is bytes:
        return T.StringType(len(value) + 1)
    return BOOL if kind is bool else INT


def lower_getopt(g, e):
    value = g.checked.option_values[e]
    if isinstance(value, bytes):
        return g.string_constant(value, g.type_of(e).size)
    return g.constant(int(value))


BUILTINS = (
    function("getopt", (1, 2), check_getopt, lower_getopt),
)
