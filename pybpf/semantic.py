"""Type-check pass: every expression typed, every map's kind, key and value inferred and checked.

    checked = check_types(program, groups, diags, params=["10", "bash"])
    checked.types[node]          # IntType / StringType / ProbeType / TupleType / VoidType
    checked.maps["@"]            # MapInfo(kind=MapKind.COUNT, key=(ProbeType(),), ...)

Types live in a side table keyed by node (nodes compare by identity). Errors go to `diags` and the
walk goes on, so one run reports every problem it can.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pybpf import ast
from pybpf import types as T
from pybpf.diagnostics import Diagnostics, Span
from pybpf.ktypes import KernelField, KernelRead, KernelTypeError, KernelTypes
from pybpf.probes import ProbeGroup
from pybpf.program import LhistParams, MapKind
from pybpf.runtime.printf import PrintfFormatError, parse_printf
from pybpf.tracefs import TracepointField

INT = T.IntType(8, True)
UINT = T.IntType(8, False)
VOID = T.VoidType()

BUILTIN_TYPES: dict[str, T.Type] = {
    "pid": UINT, "tid": UINT, "uid": UINT, "gid": UINT, "cpu": UINT, "nsecs": UINT,
    "elapsed": UINT, "cgroup": UINT, "rand": UINT,
    "comm": T.StringType(T.COMM_SIZE), "probe": T.ProbeType(),
}

AGGREGATIONS = {"count": MapKind.COUNT, "sum": MapKind.SUM, "min": MapKind.MIN,
                "max": MapKind.MAX, "avg": MapKind.AVG, "stats": MapKind.STATS,
                "hist": MapKind.HIST, "lhist": MapKind.LHIST}
AGGREGATION_ARITY = {"count": 0, "hist": 1, "lhist": 4}
MAP_FUNCTIONS = ("print", "clear", "zero", "delete")
# args.NAME: tracepoints from their format files; the others from BTF (kprobes: the arguments
# of functions that have BTF, read from their registers).
ARGS_PROVIDERS = ("tracepoint", "rawtracepoint", "fentry", "fexit", "kprobe", "kretprobe")
BTF_ARG_PROVIDERS = ("rawtracepoint", "fentry", "fexit", "kprobe", "kretprobe")
FUNCTION_PROVIDERS = ("kprobe", "kretprobe", "fentry", "fexit")
# x86-64 calling convention: the first six arguments' registers, as offsets into struct pt_regs.
KPROBE_ARG_REGISTERS = (112, 104, 96, 88, 72, 64)     # di, si, dx, cx, r8, r9
PT_REGS_AX = 80
OTHER_FUNCTIONS = ("printf", "str", "exit", "time")
MAX_UNROLL = 100
MAX_PRINTF_ARGS = 32
# A map key and a tuple are built on the BPF stack (512 bytes), beside the probe's other values.
MAX_KEY_SIZE = 256
MAX_TUPLE_SIZE = 256


@dataclass
class MapInfo:
    name: str
    kind: MapKind
    key: tuple[T.ValueType, ...]
    value: T.Type
    lhist: LhistParams | None = None
    span: Span | None = None


@dataclass(frozen=True)
class ArgField:
    """args.NAME of a BTF-typed probe: the NAME-th u64 of the context, read as `read` says."""
    index: int
    read: KernelRead


@dataclass
class CheckedProgram:
    program: ast.Program
    groups: list[ProbeGroup]
    types: dict = field(default_factory=dict)
    maps: dict[str, MapInfo] = field(default_factory=dict)
    variables: dict[tuple[int, str], T.Type] = field(default_factory=dict)  # (id(probe), name)
    params: tuple[str, ...] = ()
    # args.NAME node -> {point name: TracepointField (tracepoints) or ArgField (BTF probes)}
    fields: dict = field(default_factory=dict)
    kernel_fields: dict = field(default_factory=dict)   # FieldAccess/Deref node -> KernelField
    constants: dict = field(default_factory=dict)       # sizeof/offsetof node -> int
    pointer_scale: dict = field(default_factory=dict)   # pointer +/- int node -> pointee size
    retvals: dict = field(default_factory=dict)         # retval node -> {point: KernelRead}


def is_int(t) -> bool:
    """Integers, and kernel pointers, which compute as unsigned 64-bit integers."""
    return isinstance(t, (T.IntType, T.PointerType))


def storable(t: T.Type) -> T.Type:
    """What a map or an event holds of a value: pointers as plain u64, ints in 8 bytes."""
    return T.IntType(8, t.signed) if is_int(t) else t


def _unify(a: T.Type, b: T.Type) -> T.Type | None:
    """The type both a and b fit in, or None: strings widen to the larger, ints to 64 bits."""
    if a == b:
        return a
    if isinstance(a, T.StringType) and isinstance(b, T.StringType):
        return a if a.size >= b.size else b
    if is_int(a) and is_int(b):
        return T.IntType(8, a.signed and b.signed)
    if isinstance(a, T.TupleType) and isinstance(b, T.TupleType) and \
            len(a.elements) == len(b.elements):
        parts = [_unify(x, y) for x, y in zip(a.elements, b.elements)]
        return None if None in parts else T.TupleType(tuple(parts))
    return a if a == b else None


class TypeChecker:
    def __init__(self, program: ast.Program, groups: list[ProbeGroup], diags: Diagnostics,
                 params: tuple[str, ...]):
        self.result = CheckedProgram(program, groups, params=params)
        self.diags = diags
        self.group: ProbeGroup | None = None
        self.loop_depth = 0
        self.in_str_call = False
        self._kernel_types: KernelTypes | None = None

    def kernel_types(self, span: Span) -> KernelTypes | None:
        """The running kernel's BTF, loaded on first need: programs without kernel types never
        pay for it."""
        if self._kernel_types is None:
            from pybpf import btf
            try:
                self._kernel_types = KernelTypes(btf.vmlinux())
            except btf.BtfError as e:
                self.error(f"kernel types are needed here, but {e}", span)
                return None
        return self._kernel_types

    # Entry -----------------------------------------------------------------------------------

    def check(self) -> CheckedProgram:
        for group in self.result.groups:
            self.group = group
            if group.probe.predicate is not None:
                t = self.expr(group.probe.predicate)
                if t is not None and not is_int(t):
                    self.diags.error("Invalid type for predicate: " + str(t),
                                     group.probe.predicate.span)
            self.block(group.probe.body)
        return self.result

    def error(self, message: str, span: Span) -> None:
        self.diags.error(message, span)

    def set(self, node, t):
        self.result.types[node] = t
        return t

    # Statements ------------------------------------------------------------------------------

    def block(self, stmts) -> None:
        for s in stmts:
            self.statement(s)

    def statement(self, s) -> None:
        if isinstance(s, ast.ExprStatement):
            self.expr(s.expr, statement=True)
        elif isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.If):
            self.condition(s.cond)
            self.block(s.then)
            self.block(s.otherwise)
        elif isinstance(s, ast.While):
            self.condition(s.cond)
            self.loop_depth += 1
            self.block(s.body)
            self.loop_depth -= 1
        elif isinstance(s, ast.Unroll):
            count = self.constant_int(s.count)
            if count is not None and not 1 <= count <= MAX_UNROLL:
                self.error(f"unroll count must be between 1 and {MAX_UNROLL}", s.count.span)
            self.block(s.body)
        elif isinstance(s, ast.Jump):
            if s.kind != "return" and not self.loop_depth:
                self.error(f"'{s.kind}' outside of a loop", s.span)

    def condition(self, cond) -> None:
        t = self.expr(cond)
        if t is not None and not is_int(t):
            self.error(f"Invalid condition of type {t}: an integer is required", cond.span)

    def assign(self, s: ast.Assign) -> None:
        value = s.value
        if isinstance(s.target, ast.Map) and isinstance(value, ast.Call) and \
                value.name in AGGREGATIONS:
            if s.op is not None:
                self.error(f"{value.name}() cannot be combined with '{s.op}='", s.span)
            self.aggregation(s.target, value)
            return
        t = self.expr(value)
        if t is None:
            return
        if isinstance(t, T.VoidType):
            self.error("Cannot assign a value of type void", value.span)
            return
        if s.op is not None:
            if isinstance(s.target, ast.Map) and s.target.name not in self.result.maps:
                self.assign_map(s.target, MapKind.VALUE, INT)
            if not is_int(t):
                self.error(f"The {s.op}= operator needs integers, not {t}", value.span)
                return
            current = self.expr(s.target)
            if current is not None and not is_int(current):
                self.error(f"The {s.op}= operator needs integers, not {current}", s.target.span)
            return
        if isinstance(t, T.RecordType):
            self.error(f"a {t} cannot be stored: store a pointer to it or its fields", value.span)
            return
        if isinstance(t, T.IntType):
            t = T.IntType(8, t.signed)
        if isinstance(s.target, ast.Variable):
            self.assign_variable(s.target, t)
        else:
            self.assign_map(s.target, MapKind.VALUE, storable(t))

    def assign_variable(self, var: ast.Variable, t: T.Type) -> None:
        key = (id(self.group.probe), var.name)
        old = self.result.variables.get(key)
        if old is not None:
            merged = _unify(old, t)
            if merged is None:
                self.error(f"Type mismatch for {var.name}: trying to assign value of type "
                           f"'{t}' when variable already contains a value of type '{old}'",
                           var.span)
                return
            t = merged
        self.result.variables[key] = t
        self.set(var, t)

    def storable_types(self, exprs, what: str) -> list[T.ValueType] | None:
        """The types values take in a map key or a tuple: neither void nor whole records."""
        types = []
        for e in exprs:
            t = self.expr(e)
            if t is None:
                return None
            if isinstance(t, (T.VoidType, T.RecordType)):
                self.error(f"Invalid {what} of type {t}", e.span)
                return None
            types.append(storable(t))
        return types

    def map_keys(self, m: ast.Map) -> tuple[T.ValueType, ...] | None:
        if m.keys is None:
            return ()
        keys = self.storable_types(m.keys, "map key")
        if keys is None:
            return None
        keys = tuple(keys)
        size = sum(T.slot_size(k) for k in keys)
        if size > MAX_KEY_SIZE:
            self.error(f"The key of {m.name} takes {size} bytes, more than the {MAX_KEY_SIZE} a map key "
                       f"can have: use fewer or shorter strings (str(x, n))", m.span)
            return None
        return tuple(keys)

    def assign_map(self, m: ast.Map, kind: MapKind, value: T.Type,
                   lhist: LhistParams | None = None) -> None:
        keys = self.map_keys(m)
        if keys is None:
            return
        info = self.result.maps.get(m.name)
        if info is None:
            self.result.maps[m.name] = MapInfo(m.name, kind, keys, value, lhist, m.span)
            return
        if info.kind is not kind:
            self.error(f"Type mismatch for {m.name}: trying to assign value of type "
                       f"'{self.kind_name(kind, value)}' when map already contains a value of "
                       f"type '{self.kind_name(info.kind, info.value)}'", m.span)
            return
        merged = _unify(info.value, value)
        if merged is None:
            self.error(f"Type mismatch for {m.name}: trying to assign value of type '{value}' "
                       f"when map already contains a value of type '{info.value}'", m.span)
            return
        if info.lhist is not None and lhist is not None and info.lhist != lhist:
            self.error(f"Different lhist bounds in a single map unsupported: {m.name}", m.span)
            return
        info.value = merged
        self.merge_keys(info, keys, m)

    @staticmethod
    def kind_name(kind: MapKind, value: T.Type) -> str:
        return str(value) if kind is MapKind.VALUE else f"{kind.value}()"

    def merge_keys(self, info: MapInfo, keys: tuple, m: ast.Map) -> None:
        if len(keys) != len(info.key):
            self.error(f"Argument mismatch for {m.name}: trying to access with "
                       f"{len(keys)} arguments when map expects {len(info.key)} arguments",
                       m.span)
            return
        merged = [_unify(a, b) for a, b in zip(info.key, keys)]
        if None in merged:
            bad = ", ".join(map(str, keys))
            self.error(f"Argument mismatch for {m.name}: trying to access with arguments: "
                       f"[{bad}] when map expects arguments: [{', '.join(map(str, info.key))}]",
                       m.span)
            return
        info.key = tuple(merged)

    def aggregation(self, m: ast.Map, call: ast.Call) -> None:
        name, args = call.name, call.args
        arity = AGGREGATION_ARITY.get(name, 1)
        if len(args) != arity:
            self.error(f"{name}() requires {arity} argument{'s' if arity != 1 else ''} "
                       f"({len(args)} provided)", call.span)
            return
        lhist = None
        if args:
            t = self.expr(args[0])
            if t is not None and not is_int(t):
                self.error(f"{name}() expects an integer argument, got {t}", args[0].span)
                return
        if name == "lhist":
            bounds = [self.constant_int(a) for a in args[1:]]
            if None in bounds:
                return
            lo, hi, step = bounds
            if lo < 0 or hi <= lo or step <= 0 or (hi - lo) // step > 1000:
                self.error("lhist() needs 0 <= min < max, step > 0 and at most 1000 buckets",
                           call.span)
                return
            lhist = LhistParams(lo, hi, step)
        self.set(call, VOID)
        self.assign_map(m, AGGREGATIONS[name], INT, lhist)

    # Expressions -----------------------------------------------------------------------------

    def constant_int(self, e) -> int | None:
        value = self.fold(e)
        if value is None:
            self.error("Expected a constant integer", e.span)
        else:
            self.set(e, INT)
        return value

    def fold(self, e) -> int | None:
        if isinstance(e, ast.Integer):
            return e.value
        if isinstance(e, ast.PositionalParam):
            text = self.param_text(e.index)
            return int(text, 0) if _is_int_literal(text) else None
        if isinstance(e, ast.Unary) and e.op == "-":
            v = self.fold(e.operand)
            return None if v is None else -v
        return None

    def param_text(self, index: int) -> str:
        params = self.result.params
        return params[index - 1] if 0 < index <= len(params) else ""

    def expr(self, e, statement: bool = False) -> T.Type | None:
        method = getattr(self, "expr_" + type(e).__name__)
        t = method(e)
        if t is not None:
            self.set(e, t)
        return t

    def expr_Integer(self, e: ast.Integer):
        if not -(1 << 63) <= e.value < (1 << 64):
            self.error("Integer literal out of range", e.span)
            return None
        return INT if e.value < (1 << 63) else UINT

    def expr_String(self, e: ast.String):
        return T.StringType(len(e.value) + 1)

    def expr_PositionalParam(self, e: ast.PositionalParam):
        text = self.param_text(e.index)
        if self.in_str_call:
            return T.StringType(len(text.encode()) + 1)
        if text == "" or _is_int_literal(text):
            return INT
        self.error(f"${e.index} used numerically but given \"{text}\". Try using str(${e.index}).",
                   e.span)
        return None

    def expr_ParamCount(self, e):
        return INT

    def expr_Builtin(self, e: ast.Builtin):
        name, provider = e.name, self.group.provider
        if name == "args":
            if provider not in ARGS_PROVIDERS:
                self.error("The args builtin can only be used with tracepoint, rawtracepoint, "
                           "kprobe and fentry probes", e.span)
                return None
            self.error("args cannot be used as a value: use args.FIELD", e.span)
            return None
        if name == "curtask":
            kt = self.kernel_types(e.span)
            try:
                return kt.curtask_type() if kt else None
            except KernelTypeError as err:
                self.error(str(err), e.span)
                return None
        if name == "func":
            if provider not in FUNCTION_PROVIDERS:
                self.error("The func builtin can only be used with kprobe, kretprobe, fentry and "
                           "fexit probes", e.span)
                return None
            return T.StringType(max(len(p.target.partition("+")[0]) for p in self.group.points)
                                + 1)
        if name == "retval":
            return self.retval(e)
        if name.startswith("arg") and name[3:].isdigit():
            if provider not in ("kprobe", "fentry"):
                self.error(f"The {name} builtin can only be used with kprobe probes", e.span)
                return None
            if int(name[3:]) >= len(KPROBE_ARG_REGISTERS):
                self.error(f"{name}: only arg0 to arg{len(KPROBE_ARG_REGISTERS) - 1} are "
                           "passed in registers", e.span)
                return None
            return UINT
        t = BUILTIN_TYPES.get(name)
        if t is None:
            self.error(f"Unknown identifier: '{name}'", e.span)
        return t

    def retval(self, e: ast.Builtin):
        provider = self.group.provider
        if provider == "kretprobe" and not self.group.btf_return:
            return INT
        if provider not in ("fexit", "kretprobe"):
            self.error("The retval builtin can only be used with kretprobe and fexit probes",
                       e.span)
            return None
        kt = self.kernel_types(e.span)
        if kt is None:
            return None
        reads, types = {}, set()
        for point in self.group.points:
            type_id = self.group.btf_return.get(point.name, 0)
            if type_id == 0:
                self.error(f"{point.name} returns void: it has no retval", e.span)
                return None
            t, read = kt.convert(type_id)
            reads[point.name] = read
            types.add(t)
        if len(types) > 1:
            self.error("retval has different types in the functions this block attaches to",
                       e.span)
            return None
        self.result.retvals[e] = reads
        return types.pop()

    def expr_Variable(self, e: ast.Variable):
        t = self.result.variables.get((id(self.group.probe), e.name))
        if t is None:
            self.error(f"Undefined or undeclared variable: {e.name}", e.span)
        return t

    def expr_Map(self, e: ast.Map):
        info = self.result.maps.get(e.name)
        if info is None:
            self.error(f"Undefined map: {e.name}", e.span)
            return None
        keys = self.map_keys(e)
        if keys is None:
            return None
        self.merge_keys(info, keys, e)
        if info.kind is not MapKind.VALUE:
            self.error(f"{e.name} holds {info.kind.value}() values, which cannot be read in a "
                       "probe; print() it instead", e.span)
            return None
        return info.value

    def expr_FieldAccess(self, e: ast.FieldAccess):
        if isinstance(e.base, ast.Builtin) and e.base.name == "args":
            if self.group.provider in BTF_ARG_PROVIDERS:
                return self.btf_argument(e)
            return self.tracepoint_field(e)
        base = self.expr(e.base)
        if base is None:
            return None
        if not isinstance(base, (T.PointerType, T.RecordType)):
            self.error(f"Can not access field '{e.field}' on type '{base}'", e.span)
            return None
        kt = self.kernel_types(e.span)
        if kt is None:
            return None
        try:
            found = kt.member(base, e.field)
        except KernelTypeError as err:
            self.error(str(err), e.span)
            return None
        self.result.kernel_fields[e] = found
        return found.type

    def btf_argument(self, e: ast.FieldAccess):
        kt = self.kernel_types(e.span)
        if kt is None:
            return None
        found: dict[str, ArgField] = self.result.fields.setdefault(e, {})
        types = set()
        for point in self.group.points:
            args = self.group.btf_args.get(point.name, [])
            index = next((i for i, (n, _) in enumerate(args) if n == e.field), None)
            if index is None:
                names = ", ".join(n for n, _ in args) or "none"
                self.error(f"{point.name} has no argument named '{e.field}' (its arguments: "
                           f"{names})", e.span)
                return None
            try:
                t, read = kt.convert(args[index][1])
            except KernelTypeError as err:
                self.error(f"args.{e.field}: {err}", e.span)
                return None
            if read.kind in ("record", "string"):
                self.error(f"args.{e.field} is passed by value ({t}), which is not supported",
                           e.span)
                return None
            if self.group.provider in ("kprobe", "kretprobe") and \
                    index >= len(KPROBE_ARG_REGISTERS):
                self.error(f"args.{e.field} is argument {index}: kprobes see only the first "
                           f"{len(KPROBE_ARG_REGISTERS)}, which are passed in registers", e.span)
                return None
            found[point.name] = ArgField(index, read)
            types.add(t)
        if len(types) > 1:
            self.error(f"args.{e.field} has different types in the probes this block attaches to",
                       e.span)
            return None
        return types.pop()

    def tracepoint_field(self, e: ast.FieldAccess):
        if self.group.provider != "tracepoint":
            self.error("The args builtin can only be used with tracepoint, rawtracepoint, "
                       "kprobe and fentry probes", e.base.span)
            return None
        found: dict[str, TracepointField] = self.result.fields.setdefault(e, {})
        types = set()
        for point in self.group.points:
            fmt = self.group.formats[point.name]
            f = fmt.field(e.field)
            if f is None:
                self.error(f"Struct/union of type 'struct _tracepoint_{fmt.category}_{fmt.name}' "
                           f"does not contain a field named '{e.field}'", e.span)
                return None
            found[point.name] = f
            types.add(self.field_type(f, e))
        if None in types:
            return None
        if len(types) > 1:
            self.error(f"args.{e.field} has different types in the probes this block attaches to",
                       e.span)
            return None
        return types.pop()

    def field_type(self, f: TracepointField, e) -> T.Type | None:
        if f.is_string:
            return T.StringType(T.STRING_SIZE if f.data_loc else f.array_len)
        if f.data_loc or f.array_len is not None:
            self.error(f"args.{f.name} is an array ({f.declaration()}), which is not supported "
                       "yet", e.span)
            return None
        if f.is_pointer:
            return UINT
        if f.size not in (1, 2, 4, 8):
            self.error(f"args.{f.name} has an unsupported size of {f.size} bytes", e.span)
            return None
        return T.IntType(8, f.signed)

    def expr_TupleIndex(self, e: ast.TupleIndex):
        base = self.expr(e.base)
        if base is None:
            return None
        if not isinstance(base, T.TupleType):
            self.error(f"Can not access index {e.index} on non-tuple type '{base}'", e.span)
            return None
        if e.index >= len(base.elements):
            self.error(f"Invalid tuple index: {e.index}. Found {len(base.elements)} elements in "
                       "tuple", e.span)
            return None
        return base.elements[e.index]

    def expr_Tuple(self, e: ast.Tuple):
        parts = self.storable_types(e.elements, "tuple element")
        if parts is None:
            return None
        tuple_type = T.TupleType(tuple(parts))
        if tuple_type.size > MAX_TUPLE_SIZE:
            self.error(f"The tuple takes {tuple_type.size} bytes, more than the {MAX_TUPLE_SIZE} a tuple "
                       f"can have: use fewer or shorter elements (str(x, n))", e.span)
            return None
        return tuple_type

    def kernel_type_name(self, text: str, span: Span) -> T.Type | None:
        from pybpf.ktypes import INT_TYPE_NAMES
        if text in INT_TYPE_NAMES:
            return INT_TYPE_NAMES[text]
        kt = self.kernel_types(span)
        if kt is None:
            return None
        try:
            return kt.parse_type_name(text)
        except KernelTypeError as err:
            self.error(str(err), span)
            return None

    def expr_Cast(self, e: ast.Cast):
        target = self.kernel_type_name(e.type_name, e.span)
        operand = self.expr(e.operand)
        if target is None or operand is None:
            return None
        if not isinstance(target, (T.IntType, T.PointerType)):
            self.error(f"Cannot cast to {target}: only to integers and pointers", e.span)
            return None
        if not is_int(operand):
            self.error(f"Cannot cast {operand} to {target}", e.span)
            return None
        return target

    def expr_Deref(self, e: ast.Deref):
        t = self.expr(e.operand)
        if t is None:
            return None
        if not isinstance(t, T.PointerType) or not t.pointee:
            self.error(f"Can not dereference type '{t}': only typed kernel pointers", e.span)
            return None
        kt = self.kernel_types(e.span)
        if kt is None:
            return None
        try:
            pointee, read = kt.convert(t.pointee)
        except KernelTypeError as err:
            self.error(str(err), e.span)
            return None
        self.result.kernel_fields[e] = KernelField(0, pointee, read)
        return pointee

    def expr_SizeOf(self, e: ast.SizeOf):
        if e.type_name is not None:
            t = self.kernel_type_name(e.type_name, e.span)
            size = None if t is None else (t.size if not isinstance(t, T.IntType) else
                                           _int_size(e.type_name))
        else:
            t = self.expr(e.operand)
            size = None if t is None else t.size
        if size is None:
            return None
        self.result.constants[e] = size
        return UINT

    def expr_OffsetOf(self, e: ast.OffsetOf):
        t = self.kernel_type_name(e.type_name, e.span)
        if t is None:
            return None
        if not isinstance(t, T.RecordType):
            self.error(f"offsetof() needs a struct or union, not {t}", e.span)
            return None
        kt = self.kernel_types(e.span)
        offset, base = 0, t
        for name in e.fields:
            try:
                found = kt.member(base, name)
            except KernelTypeError as err:
                self.error(str(err), e.span)
                return None
            offset += found.offset
            base = found.type
        self.result.constants[e] = offset
        return UINT

    def expr_Binary(self, e: ast.Binary):
        left, right = self.expr(e.left), self.expr(e.right)
        if left is None or right is None:
            return None
        if e.op in ("+", "-") and isinstance(left, T.PointerType) and is_int(right):
            if isinstance(right, T.PointerType):
                if e.op == "-":
                    self.result.pointer_scale[e] = self.pointee_size(left, e.span)
                    return INT
            else:
                self.result.pointer_scale[e] = self.pointee_size(left, e.span)
                return left
        if e.op in ("==", "!=") and isinstance(left, T.StringType) and \
                isinstance(right, T.StringType):
            return INT
        if not (is_int(left) and is_int(right)):
            self.error(f"Type mismatch for '{e.op}': comparing '{left}' with '{right}'"
                       if e.op in ("==", "!=", "<", ">", "<=", ">=")
                       else f"The '{e.op}' operator needs integers, not '{left}' and '{right}'",
                       e.span)
            return None
        if e.op in ("==", "!=", "<", ">", "<=", ">=", "&&", "||"):
            return INT
        if e.op in ("<<", ">>"):
            return T.IntType(8, left.signed)
        return T.IntType(8, left.signed and right.signed)

    def pointee_size(self, p: T.PointerType, span: Span) -> int:
        """C scales pointer arithmetic by the pointee's size (void * by 1, as GCC)."""
        kt = self.kernel_types(span)
        if kt is None or not p.pointee:
            return 1
        try:
            return kt.btf.sizeof(p.pointee)
        except Exception:
            return 1

    def expr_Unary(self, e: ast.Unary):
        t = self.expr(e.operand)
        if t is None:
            return None
        if not is_int(t):
            self.error(f"The '{e.op}' operator needs an integer, not '{t}'", e.span)
            return None
        return INT if e.op == "!" else T.IntType(8, t.signed)

    def expr_IncDec(self, e: ast.IncDec):
        target = e.target
        if isinstance(target, ast.Map) and target.name not in self.result.maps:
            self.assign_map(target, MapKind.VALUE, INT)
        if not isinstance(target, (ast.Map, ast.Variable)):
            self.error(f"The {e.op} operator needs a variable or a map", e.span)
            return None
        t = self.expr(target)
        if t is not None and not is_int(t):
            self.error(f"The {e.op} operator needs an integer, not '{t}'", e.span)
            return None
        return t

    def expr_Ternary(self, e: ast.Ternary):
        self.condition(e.cond)
        a, b = self.expr(e.then), self.expr(e.otherwise)
        if a is None or b is None:
            return None
        t = _unify(a, b)
        if t is None or isinstance(t, T.VoidType):
            self.error(f"Ternary operator branches have different types: '{a}' and '{b}'", e.span)
        return t

    # Calls -----------------------------------------------------------------------------------

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


def _int_size(name: str) -> int:
    return int(name.lstrip("uint")) // 8


def _is_int_literal(text: str) -> bool:
    try:
        int(text, 0)
        return True
    except ValueError:
        return False


def check_types(program: ast.Program, groups: list[ProbeGroup], diags: Diagnostics,
                params: tuple[str, ...] = ()) -> CheckedProgram:
    # Maps may be read in one probe and assigned in a later one: a first walk, whose errors are
    # dropped, learns every map's type; the second walk checks with them all known.
    scratch = Diagnostics(diags.source, diags.filename)
    first = TypeChecker(program, groups, scratch, tuple(params)).check()
    checker = TypeChecker(program, groups, diags, tuple(params))
    checker.result.maps = first.maps
    return checker.check()
