"""What the type checker learns: the side tables of types, the maps' kinds and layouts, and the
language's typing rules and limits shared by the checker's modules and the code generator.

    checked.types[node]          # IntType / StringType / ProbeType / TupleType / VoidType / ...
    checked.maps["@"]            # MapInfo(kind=MapKind.COUNT, key=(ProbeType(),), ...)
"""

from __future__ import annotations

import re

from pybpf import ast
from pybpf import types as T
from pybpf.diagnostics import Span
from pybpf.ktypes import KernelRead
from pybpf.mapkinds import LhistParams, MapKind, TSeriesParams
from pybpf.providers.base import ProbeGroup
from pybpf.records import factory, record
from pybpf.uapi.ptrace import ARGUMENT_REGISTERS, RETURN_REGISTER

INT = T.IntType(8, True)
UINT = T.IntType(8, False)
CHAR = T.IntType(1, True)               # an element of a string ($s[0])
BOOL = T.IntType(8, False, True)        # comparisons, !, && and ||, true and false, (bool)x
VOID = T.VoidType()


def function_name(point) -> str:
    """The function a probe is on: 'vfs_read' of kprobe:vfs_read+4, 'readline' of
    uprobe:/usr/bin/bash:readline, 'ns::add(int, int)' of a C++ function (the binary's path
    ends at the first colon; a `+` not followed by a number is the name's: 'operator+')."""
    name = point.target.partition(":")[2] or point.target
    base, plus, offset = name.rpartition("+")
    return base if plus and offset[:1].isdigit() else name
# A kprobe sees a function's arguments in registers: the first six, offsets into struct pt_regs.
KPROBE_ARG_REGISTERS = ARGUMENT_REGISTERS
PT_REGS_AX = RETURN_REGISTER
MAX_UNROLL = 100
MAX_PRINTF_ARGS = 32
# A map key and a tuple are built on the BPF stack (512 bytes), beside the probe's other values.
MAX_KEY_SIZE = 256
MAX_TUPLE_SIZE = 256


@record
class MapInfo:
    name: str
    kind: MapKind
    key: tuple[T.ValueType, ...]
    value: T.Type
    lhist: LhistParams | None = None
    span: Span | None = None
    hist_bits: int = 0          # hist(v, k): 2^k buckets per power of two
    tseries: TSeriesParams | None = None


@record(eq=False)
class VarBinding:
    """One scratch variable: a name in the block that declared it (by `let` or by its first
    assignment). Two blocks may each have their own `$x`, of different types."""
    name: str
    type: T.Type | None = None
    declared: bool = False        # typed by `let $x: T`, so assignments convert to it


@record(frozen=True)
class ArgField:
    """args.NAME of a BTF-typed probe: the NAME-th u64 of the context, read as `read` says."""
    index: int
    read: KernelRead


@record
class CheckedScript:
    program: ast.Script
    groups: list[ProbeGroup]
    types: dict = factory(dict)
    maps: dict[str, MapInfo] = factory(dict)
    variables: dict = factory(dict)       # Variable node -> VarBinding
    params: tuple[str, ...] = ()
    named_params: tuple[str, ...] = ()       # `--name=value` script arguments, for getopt()
    option_values: dict = factory(dict)   # getopt() call -> int, bool or bytes
    # args.NAME node -> {point name: TracepointField (tracepoints) or ArgField (BTF probes)}
    fields: dict = factory(dict)
    kernel_fields: dict = factory(dict)   # FieldAccess/Deref node -> KernelField
    constants: dict = factory(dict)       # sizeof/offsetof node -> int
    pointer_scale: dict = factory(dict)   # pointer +/- int node -> pointee size
    retvals: dict = factory(dict)         # retval node -> {point: KernelRead}
    struct_copies: set = factory(set)     # *p / p->s nodes whose struct is copied
    # `args` as a value -> its fields' args.NAME nodes, read into the struct in order
    args_values: dict = factory(dict)
    # str(address) node -> True: it reads the process's memory, False: the kernel's (absent: not
    # known, the helper that tells them apart by the address)
    string_reads: dict = factory(dict)
    # `$N + K` inside str() -> the parameter's text from byte K on (bpftrace's offset into it)
    param_suffixes: dict = factory(dict)
    depends_on: set = factory(set)        # pybpf.facts: what a value came from
    # ForMap node -> the VarBindings its body shares with the code around it, in first-use order
    loop_captures: dict = factory(dict)
    # ==/!= node comparing syscall_name(nr) with a string literal -> the literal's syscall number
    syscall_comparisons: dict = factory(dict)


def is_int(t) -> bool:
    """Integers, and kernel pointers, which compute as unsigned 64-bit integers."""
    return isinstance(t, (T.IntType, T.PointerType))


def spread_key(t) -> bool:
    """Whether a map's one key of type t is its keys: `@m[$k]` with $k = (a, b) is `@m[a, b]`, as
    in bpftrace (a record stays one key: its names label it)."""
    return isinstance(t, T.TupleType) and not t.names


def is_bool(t) -> bool:
    return isinstance(t, T.IntType) and t.boolean


def storable(t: T.Type) -> T.Type:
    """What a map or an event holds of a value: pointers as plain u64, ints in 8 bytes."""
    if is_bool(t):
        return BOOL
    return T.IntType(8, t.signed) if is_int(t) else t


def stored(t: T.Type) -> T.Type:
    """What a map, a key or a tuple holds of a value: typed pointers stay typed (printed in hex,
    and followed with -> when read back), other integers take 8 bytes."""
    return t if isinstance(t, T.PointerType) else storable(t)


def unify(a: T.Type, b: T.Type) -> T.Type | None:
    """The type both a and b fit in, or None: strings widen to the larger, ints to 64 bits."""
    if a == b:
        return a
    if isinstance(a, T.StringType) and isinstance(b, T.StringType):
        return a if a.size >= b.size else b
    if is_int(a) and is_int(b):
        if is_bool(a) or is_bool(b):      # a bool beside an integer is its 0 or 1: the integer's type
            return storable(b if is_bool(a) else a)
        return T.IntType(8, a.signed and b.signed)
    if isinstance(a, T.TupleType) and isinstance(b, T.TupleType) and \
            len(a.elements) == len(b.elements):
        if sorted(a.names) != sorted(b.names):
            return None
        # records match by name, in a's order: (b=2, a=1) is stored into (a=..., b=...) reordered
        others = [b.elements[b.names.index(n)] for n in a.names] if a.names else b.elements
        parts = [unify(x, y) for x, y in zip(a.elements, others)]
        return None if None in parts else T.TupleType(tuple(parts), a.names)
    return a if a == b else None


# A positional parameter read as an integer the way bpftrace reads one (strtoul/strtol, base 0):
# C's leading white space and sign, then decimal, 0x hex, 0b binary (C23's strtoul, and pybpf's
# docs before) or 0 octal digits, and nothing after them (so no `_` separators: only literals in
# the program take them).
_C_INTEGER = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_BASES = {"0x": 16, "0X": 16, "0b": 2, "0B": 2}


def split_arguments(params) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The script's arguments as (positional, named): `--name[=value]` ones are named (getopt()
    reads them, as bpftrace 0.24+), the others are $1, $2, ... in their order."""
    named = tuple(p for p in params if p.startswith("--") and len(p) > 2)
    return tuple(p for p in params if p not in named), named


def param_int(text: str) -> int | None:
    """The integer value of a positional parameter's text, or None when it is not an integer or
    does not fit 64 bits (a negative one int64, the others uint64), where bpftrace refuses it."""
    match = _C_INTEGER.fullmatch(text)
    if match is None or len(match[2]) > 66:     # no 64-bit value has more digits: skip the int()
        return None
    digits = match[2]
    value = int(digits, _BASES.get(digits[:2], 8 if digits[:1] == "0" else 10))
    if match[1] == "-":
        return -value if value <= 1 << 63 else None
    return value if value < 1 << 64 else None
