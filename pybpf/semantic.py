"""Type-check pass: every expression typed, every map's kind, key and value inferred and checked.

    checked = check_types(program, groups, diags, params=["10", "bash"])
    checked.types[node]          # IntType / StringType / ProbeType / TupleType / VoidType
    checked.maps["@"]            # MapInfo(kind=MapKind.COUNT, key=(ProbeType(),), ...)

Types live in a side table keyed by node (nodes compare by identity). Errors go to `diags` and the
walk goes on, so one run reports every problem it can.
"""

from __future__ import annotations

from pybpf import ast, builtins, cpus
from pybpf import types as T
from pybpf.checked import (BOOL, INT, MAX_KEY_SIZE, MAX_TUPLE_SIZE, MAX_UNROLL, UINT, VOID,
                           CheckedScript, MapInfo, VarBinding, is_int, param_int, split_arguments,
                           spread_key, storable, stored, unify)
from pybpf.diagnostics import Diagnostics, Span
from pybpf.builtins.cpu import checked_cpus
from pybpf.builtins.formatted import syscall_number
from pybpf.ktypes import KernelTypes
from pybpf.mapkinds import LhistParams, MapKind, TSeriesParams, kind_for
from pybpf.providers.base import ProbeGroup
from pybpf.semantic_kernel import KernelChecks
from pybpf.uapi.headers import header_constant
from pybpf.uapi.unistd_64 import ARCH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.cdefs import ScriptTypes


class TypeChecker(KernelChecks):
    def __init__(self, program: ast.Script, groups: list[ProbeGroup], diags: Diagnostics,
                 params: tuple[str, ...], unsafe: bool = False, string_size: int = T.STRING_SIZE,
                 stack_mode: str = "bpftrace", c_types: ScriptTypes | None = None):
        positional, named = split_arguments(params)
        self.result = CheckedScript(program, groups, params=positional, named_params=named)
        self.c_types = c_types      # the script's C definitions (pybpf.cdefs), over the kernel's
        self.diags = diags
        self.unsafe = unsafe        # --unsafe: system() and signal() allowed
        self.string_size = string_size      # max_strlen: str(), __data_loc strings, buf()
        self.stack_mode = stack_mode        # stack_mode: kstack/ustack without a mode
        self.group: ProbeGroup | None = None
        self.loop_depth = 0
        self.scopes: list[dict[str, VarBinding]] = []    # the probe's block, then inner blocks
        # The for-loops over maps around the statement being checked, each with the index of its
        # body's scope: a variable found in a scope before it is one its callback must be given.
        self.map_loops: list[tuple[ast.ForMap, int]] = []
        self.in_str_call = False
        self._kernel_types: KernelTypes | None = None
        self._user_kernel_types: dict[int, KernelTypes] = {}     # by id of a group's user_btf

    # Entry -----------------------------------------------------------------------------------

    def check(self) -> CheckedScript:
        for group in self.result.groups:
            self.group = group
            if group.probe.predicate is not None:
                t = self.expr(group.probe.predicate)
                if t is not None and not is_int(t):
                    self.diags.error("Invalid type for predicate: " + str(t),
                                     group.probe.predicate.span)
            self.scopes = []
            self.block(group.probe.body)
        return self.result

    def error(self, message: str, span: Span) -> None:
        self.diags.error(message, span)

    def set(self, node, t):
        self.result.types[node] = t
        return t

    # Statements ------------------------------------------------------------------------------

    def block(self, stmts, loop: bool = False, loop_var: ast.Variable | None = None,
              loop_type: T.Type = INT) -> None:
        """A block is a scope: what it declares is gone after it."""
        self.scopes.append({})
        self.loop_depth += loop
        if loop_var is not None:
            self.bind(self.declare(loop_var), loop_var, loop_type)
        for s in stmts:
            self.statement(s)
        self.loop_depth -= loop
        for binding in self.scopes.pop().values():
            if binding.type is None:       # `let $x;` never assigned: an int64 zero
                binding.type = INT

    def statement(self, s) -> None:
        if isinstance(s, ast.ExprStatement):
            self.expr(s.expr, statement=True)
        elif isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.VarDecl):
            self.var_decl(s)
        elif isinstance(s, ast.If):
            self.condition(s.cond)
            self.block(s.then)
            self.block(s.otherwise)
        elif isinstance(s, ast.While):
            self.condition(s.cond)
            self.block(s.body, loop=True)
        elif isinstance(s, ast.ForRange):
            for bound in (s.start, s.end):
                t = self.expr(bound)
                if t is not None and not is_int(t):
                    self.error(f"Loop range requires an integer, not '{t}'", bound.span)
            if self.lookup(s.var.name) is not None:
                self.shadowing(s.var)
            self.block(s.body, loop=True, loop_var=s.var)
        elif isinstance(s, ast.ForMap):
            self.for_map(s)
        elif isinstance(s, ast.Unroll):
            count = self.constant_int(s.count)
            if count is not None and not 1 <= count <= MAX_UNROLL:
                self.error(f"unroll count must be between 1 and {MAX_UNROLL}", s.count.span)
            self.block(s.body)
        elif isinstance(s, ast.Jump):
            if s.kind != "return" and not self.loop_depth:
                self.error(f"'{s.kind}' outside of a loop", s.span)
            elif s.kind == "return" and self.map_loops:
                self.error("'return' statement is not allowed in a for-loop", s.span)

    def for_map(self, s: ast.ForMap) -> None:
        """`for ($kv : @m)`: the body becomes a bpf_for_each_map_elem callback (backend), with
        $kv = (key, value) and the variables it shares with the probe passed by address."""
        if self.lookup(s.var.name) is not None:
            self.error(f"Loop declaration shadows existing variable: {s.var.name}", s.var.span)
            return
        m = s.map
        info = self.result.maps.get(m.name)
        if info is None:
            self.error(f"Undefined map: {m.name}", m.span)
            return
        if m.keys is not None:
            self.error(f"A for-loop walks a whole map: {m.name} without a key", m.span)
            return
        value = kind_for(info.kind).loop_type(info.value)
        if value is None:
            self.error(f"Loop expression does not support type: {info.kind.value}()", m.span)
            return
        if not info.key:
            self.error("Maps used as for-loop expressions must have keys to iterate over", m.span)
            return
        key = info.key[0] if len(info.key) == 1 else T.TupleType(info.key)
        if kind_for(info.kind).percpu:
            # the loop merges every slot of a per-CPU value, as user space reads it
            self.result.constants[s] = checked_cpus(self, s.span, cpus.cpu_slots)
        self.result.loop_captures[s] = []
        self.map_loops.append((s, len(self.scopes)))
        self.block(s.body, loop=True, loop_var=s.var, loop_type=T.TupleType((key, value)))
        self.map_loops.pop()

    def context_refused(self, name: str, span: Span) -> bool:
        """A for-loop body over a map runs in a callback that has no probe context: what reads it
        is refused there (bpftrace's rule and message)."""
        if self.map_loops:
            self.error(f"'{name}' builtin is not allowed in a for-loop", span)
        return bool(self.map_loops)

    def condition(self, cond) -> None:
        t = self.expr(cond)
        if t is not None and not is_int(t):
            self.error(f"Invalid condition of type {t}: an integer is required", cond.span)

    def assign(self, s: ast.Assign) -> None:
        value = s.value
        aggregation = builtins.aggregation(value.name) if isinstance(value, ast.Call) else None
        if isinstance(s.target, ast.Map) and aggregation is not None:
            if s.op is not None:
                self.error(f"{value.name}() cannot be combined with '{s.op}='", s.span)
            if self.arity(value, aggregation.arity, aggregation.arity + aggregation.optional):
                self.set(value, VOID)
                aggregation.check(self, value, s.target, aggregation.map_kind)
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
            t = self.struct_value(value, t)
            if t is None:
                return
        if isinstance(t, T.IntType):
            t = storable(t)
        if isinstance(s.target, ast.Variable):
            self.assign_variable(s.target, t, value)
        else:
            self.assign_map(s.target, MapKind.VALUE, stored(t))

    # Variables -------------------------------------------------------------------------------

    def lookup(self, name: str) -> VarBinding | None:
        for depth in range(len(self.scopes) - 1, -1, -1):
            binding = self.scopes[depth].get(name)
            if binding is not None:
                for loop, body_depth in self.map_loops:
                    captures = self.result.loop_captures[loop]
                    if depth < body_depth and binding not in captures:
                        captures.append(binding)
                return binding
        return None

    def declare(self, var: ast.Variable) -> VarBinding:
        binding = self.scopes[-1][var.name] = VarBinding(var.name)
        return binding

    def bind(self, binding: VarBinding, var: ast.Variable, t: T.Type) -> None:
        binding.type = t
        self.result.variables[var] = binding
        self.set(var, t)

    def shadowing(self, var: ast.Variable) -> None:
        self.error(f"Variable {var.name} was already declared. Variable shadowing is not "
                   "allowed.", var.span)

    def var_decl(self, s: ast.VarDecl) -> None:
        if self.lookup(s.var.name) is not None:
            self.shadowing(s.var)
            return
        binding = self.declare(s.var)
        if s.type_name is not None:
            declared = self.declared_type(s.type_name, s.span)
            if declared is None:
                return
            binding.declared = True
            self.bind(binding, s.var, declared)
        if s.value is not None:
            self.assign(ast.Assign(s.var, None, s.value, s.span))
        else:
            self.result.variables[s.var] = binding     # typed by its first assignment

    def assign_variable(self, var: ast.Variable, t: T.Type, value: ast.Expr) -> None:
        binding = self.lookup(var.name)
        if binding is None:
            binding = self.declare(var)
        old = binding.type
        if binding.declared and isinstance(old, T.IntType) and is_int(t):
            constant = self.fold(value)
            if constant is not None and not fits(constant, old):
                self.error(f"Type mismatch for {var.name}: trying to assign value of type "
                           f"'{smallest_int(constant)}' when variable already has a type "
                           f"'{old}'", var.span)
                return
            t = old          # C's conversion on assignment: truncated to the declared type
        elif binding.declared and isinstance(old, T.StringType) and isinstance(t, T.StringType):
            if t.size > old.size:
                self.error(f"Type mismatch for {var.name}: trying to assign value of type "
                           f"'{t}' when variable already has a type '{old}'", var.span)
                return
            t = old          # a shorter string fits the declared size
        elif old is not None:
            merged = unify(old, t)
            if merged is None:
                self.error(f"Type mismatch for {var.name}: trying to assign value of type "
                           f"'{t}' when variable already contains a value of type '{old}'",
                           var.span)
                return
            t = merged
        self.bind(binding, var, t)

    def storable_types(self, exprs, what: str) -> list[T.ValueType] | None:
        """The types values take in a map key or a tuple: not void; structs copied whole."""
        types = []
        for e in exprs:
            t = self.expr(e)
            if isinstance(t, T.RecordType):
                t = self.struct_value(e, t)
            if t is None:
                return None
            if isinstance(t, T.VoidType):
                self.error(f"Invalid {what} of type {t}", e.span)
                return None
            types.append(stored(t))
        return types

    def map_keys(self, m: ast.Map) -> tuple[T.ValueType, ...] | None:
        if m.keys is None:
            return ()
        keys = self.storable_types(m.keys, "map key")
        if keys is None:
            return None
        keys = tuple(keys[0].elements) if len(keys) == 1 and spread_key(keys[0]) else tuple(keys)
        size = sum(T.slot_size(k) for k in keys)
        if size > MAX_KEY_SIZE:
            self.error(f"The key of {m.name} takes {size} bytes, more than the {MAX_KEY_SIZE} a map key "
                       f"can have: use fewer or shorter strings (str(x, n))", m.span)
            return None
        return tuple(keys)

    def assign_map(self, m: ast.Map, kind: MapKind, value: T.Type,
                   lhist: LhistParams | None = None, hist_bits: int = 0,
                   tseries: TSeriesParams | None = None) -> None:
        keys = self.map_keys(m)
        if keys is None:
            return
        info = self.result.maps.get(m.name)
        if info is None:
            self.result.maps[m.name] = MapInfo(m.name, kind, keys, value, lhist, m.span, hist_bits,
                                               tseries)
            return
        if info.kind is not kind:
            self.error(f"Type mismatch for {m.name}: trying to assign value of type "
                       f"'{self.kind_name(kind, value)}' when map already contains a value of "
                       f"type '{self.kind_name(info.kind, info.value)}'", m.span)
            return
        merged = unify(info.value, value)
        if merged is None:
            self.error(f"Type mismatch for {m.name}: trying to assign value of type '{value}' "
                       f"when map already contains a value of type '{info.value}'", m.span)
            return
        if info.lhist is not None and lhist is not None and info.lhist != lhist:
            self.error(f"Different lhist bounds in a single map unsupported: {m.name}", m.span)
            return
        if info.hist_bits != hist_bits:
            self.error(f"Different bits in a single hist unsupported: {m.name}", m.span)
            return
        if info.tseries != tseries:
            self.error(f"Different tseries intervals or aggregations in a single map unsupported: "
                       f"{m.name}", m.span)
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
        merged = [unify(a, b) for a, b in zip(info.key, keys)]
        if None in merged:
            bad = ", ".join(map(str, keys))
            self.error(f"Argument mismatch for {m.name}: trying to access with arguments: "
                       f"[{bad}] when map expects arguments: [{', '.join(map(str, info.key))}]",
                       m.span)
            return
        info.key = tuple(merged)

    # Expressions -----------------------------------------------------------------------------

    def constant_int(self, e) -> int | None:
        reported = len(self.diags.items)
        value = self.fold(e)
        if value is None and len(self.diags.items) == reported:   # else fold said why (a bad name)
            self.error("Expected a constant integer", e.span)
        else:
            self.set(e, INT)
        return value

    def fold(self, e) -> int | None:
        if isinstance(e, ast.Integer):
            return e.value
        if isinstance(e, ast.PositionalParam):
            return param_int(self.param_text(e.index))
        if isinstance(e, ast.Unary) and e.op == "-":
            v = self.fold(e.operand)
            return None if v is None else -v
        if isinstance(e, ast.Binary) and e.op in ("+", "-", "*"):
            a, b = self.fold(e.left), self.fold(e.right)
            if a is not None and b is not None:
                return a + b if e.op == "+" else a - b if e.op == "-" else a * b
        if isinstance(e, ast.Builtin) and builtins.identifier(e.name) is None:
            # a named constant: a kernel enumerator or an included header's #define (AF_INET)
            return self.result.constants.get(e) if self.enumerator(e) is not None else None
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
            return T.StringType(len(text.encode("utf-8", "surrogateescape")) + 1)
        if text == "":
            return INT          # a parameter not given is 0
        value = param_int(text)
        if value is not None:
            return UINT if value >= 1 << 63 else INT
        # A word with control characters or bytes that are not UTF-8 is shown escaped: one line.
        shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
        self.error(f"${e.index} used numerically but given \"{shown}\". Try using str(${e.index}).",
                   e.span)
        return None

    def expr_ParamCount(self, e):
        return INT

    def expr_Builtin(self, e: ast.Builtin):
        entry = builtins.identifier(e.name)
        if entry is None:
            return self.enumerator(e)
        if entry.reads_context and self.context_refused(e.name, e.span):
            return None
        return entry.check(self, e)

    def enumerator(self, e: ast.Builtin):
        """A name that is no builtin may be a kernel enumerator (SKB_DROP_REASON_NOT_SPECIFIED):
        a constant of 64 bits, signed when its enum is; or a constant an included header
        #defines (AF_INET with <linux/socket.h>)."""
        from pybpf import btf
        try:
            types = self.c_types.btf if self.c_types and self.c_types.btf else btf.vmlinux()
            found = types.enumerator(e.name)
        except btf.BtfError:
            found = None
        if found:
            enum, value = found
            self.result.constants[e] = value.value
            return INT if enum.signed else UINT
        defined = header_constant(e.name, self.result.program.includes)
        if defined is None and self.c_types:
            defined = self.c_types.constants.get(e.name)
        if defined is None:
            self.error(f"Unknown identifier: '{e.name}'", e.span)
            return None
        self.result.constants[e] = defined
        return INT

    def expr_Variable(self, e: ast.Variable):
        binding = self.lookup(e.name)
        if binding is None:
            self.error(f"Undefined or undeclared variable: {e.name}", e.span)
            return None
        if binding.type is None:          # `let $x;` read before any assignment: 0
            binding.type = INT
        self.result.variables[e] = binding
        return binding.type

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

    def expr_TupleIndex(self, e: ast.TupleIndex):
        base = self.expr(e.base)
        if base is None:
            return None
        if isinstance(base, T.TupleType) and base.names:
            self.error(f"Can not access index {e.index} on record type '{base}': its fields are "
                       f"read by name ({', '.join('.' + n for n in base.names)})", e.span)
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
        if e.names and not self.record_names(e):
            return None
        parts = self.storable_types(e.elements, "record field" if e.names else "tuple element")
        if parts is None:
            return None
        tuple_type = T.TupleType(tuple(parts), e.names)
        if tuple_type.size > MAX_TUPLE_SIZE:
            self.error(f"The tuple takes {tuple_type.size} bytes, more than the {MAX_TUPLE_SIZE} a tuple "
                       f"can have: use fewer or shorter elements (str(x, n))", e.span)
            return None
        return tuple_type

    def record_names(self, e: ast.Tuple) -> bool:
        """A record's fields: every one named, each name once."""
        for i, (name, span) in enumerate(zip(e.names, e.name_spans)):
            if not name:
                self.error("Named and unnamed fields cannot be mixed: name every field of a record "
                           "(name=value), or none for a tuple", span)
                return False
            if name in e.names[:i]:
                self.error(f"Duplicate field name in record: '{name}'", span)
                return False
        return True

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
            return BOOL
        if e.op in ("==", "!=") and T.FormattedType in (type(left), type(right)):
            return self.compare_formatted(e, left, right)
        if e.op in ("==", "!=") and isinstance(left, T.RecordType):
            left = self.struct_value(e.left, left)
        if e.op in ("==", "!=") and isinstance(right, T.RecordType):
            right = self.struct_value(e.right, right)
        if left is None or right is None:
            return None
        if e.op in ("==", "!=") and isinstance(left, (T.ArrayType, T.StructType, T.TupleType)) \
                and left == right:
            return BOOL         # compared byte by byte, as bpftrace compares them
        if not (is_int(left) and is_int(right)):
            self.error(f"Type mismatch for '{e.op}': comparing '{left}' with '{right}'"
                       if e.op in ("==", "!=", "<", ">", "<=", ">=")
                       else f"The '{e.op}' operator needs integers, not '{left}' and '{right}'",
                       e.span)
            return None
        if e.op in ("==", "!=", "<", ">", "<=", ">=", "&&", "||"):
            return BOOL
        if e.op in ("<<", ">>"):
            return T.IntType(8, left.signed)
        return T.IntType(8, left.signed and right.signed)

    def compare_formatted(self, e: ast.Binary, left, right):
        """A value named only when printed (syscall_name(nr), strerror(e), ...) compared: with a
        string literal, syscall_name's name is turned into its number here, so the kernel compares
        numbers (no naming per event); any other comparison with a string is refused."""
        t, other, other_t = (left, e.right, right) if isinstance(left, T.FormattedType) else \
            (right, e.left, left)
        if t.kind == "syscall_name" and isinstance(other, ast.String):
            name = other.value.decode("utf-8", "replace")
            number = syscall_number(name)
            if number is None:
                self.error(f"No syscall is named '{name}' on {ARCH}", other.span)
                return None
            self.result.syscall_comparisons[e] = number
            return BOOL
        if not isinstance(other_t, T.StringType):
            self.error(f"Type mismatch for '{e.op}': comparing '{left}' with '{right}'", e.span)
            return None
        hint = ": compare it with a string literal (syscall_name(nr) == \"read\"), or compare " \
               "the number" if t.kind == "syscall_name" else ""
        self.error(f"'{t}' is made into text only when printed, so it cannot be compared with a "
                   f"string{hint}", e.span)
        return None

    def expr_Unary(self, e: ast.Unary):
        t = self.expr(e.operand)
        if t is None:
            return None
        if not is_int(t):
            self.error(f"The '{e.op}' operator needs an integer, not '{t}'", e.span)
            return None
        return BOOL if e.op == "!" else T.IntType(8, t.signed)

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
        t = unify(a, b)         # void too: `c ? printf("a") : printf("b");` is a statement
        if t is None:
            self.error(f"Ternary operator branches have different types: '{a}' and '{b}'", e.span)
        return t

    # Calls -----------------------------------------------------------------------------------

    def expr_Call(self, e: ast.Call):
        if builtins.aggregation(e.name) is not None:
            self.error(f"{e.name}() should be directly assigned to a map", e.span)
            return None
        entry = builtins.function(e.name)
        if entry is None:
            self.error(f"Unknown function: {e.name}", e.span)
            return None
        if entry.unsafe and not self.unsafe:
            self.error(f"{e.name}() is an unsafe function being used in safe mode", e.span)
            return None
        if entry.reads_context and self.context_refused(e.name, e.span):
            return None
        if entry.arity is not None and not self.arity(e, *entry.arity):
            return None
        return entry.check(self, e)

    def arity(self, e: ast.Call, low: int, high: int) -> bool:
        n = len(e.args)
        if low <= n <= high:
            return True
        expected = str(low) if low == high else f"{low} to {high}"
        self.error(f"{e.name}() requires {expected} argument{'s' if high != 1 else ''} "
                   f"({n} provided)", e.span)
        return False


def fits(value: int, t: T.IntType) -> bool:
    bits = t.size * 8
    return (-(1 << (bits - 1)) <= value < (1 << (bits - 1))) if t.signed else 0 <= value < (1 << bits)


def smallest_int(value: int) -> T.IntType:
    """The type bpftrace gives an integer literal: the smallest that holds it."""
    for size in (1, 2, 4, 8):
        t = T.IntType(size, value < 0)
        if fits(value, t):
            return t
    return UINT


def check_types(program: ast.Script, groups: list[ProbeGroup], diags: Diagnostics,
                params: tuple[str, ...] = (), unsafe: bool = False,
                string_size: int = T.STRING_SIZE, stack_mode: str = "bpftrace",
                c_types: ScriptTypes | None = None) -> CheckedScript:
    # Maps may be read in one probe and assigned in a later one: a first walk, whose errors are
    # dropped, learns every map's type; the second walk checks with them all known.
    scratch = Diagnostics(diags.source, diags.filename)
    first = TypeChecker(program, groups, scratch, tuple(params), unsafe, string_size,
                        stack_mode, c_types).check()
    checker = TypeChecker(program, groups, diags, tuple(params), unsafe, string_size, stack_mode,
                          c_types)
    checker.result.maps = first.maps
    return checker.check()
