"""Type rules for what the kernel's types describe: tracepoint and BTF `args`, `retval`, member
access through typed pointers and records, casts, dereference, sizeof and offsetof.

Mixed into pybpf.semantic.TypeChecker, whose expr/error/set these methods use.
"""

from __future__ import annotations

import re

from pybpf.records import replace

from pybpf import ast
from pybpf import types as T
from pybpf.checked import (CHAR, INT, KPROBE_ARG_REGISTERS, MAX_TUPLE_SIZE, UINT, ArgField,
                           is_int)
from pybpf.diagnostics import Span
from pybpf.ktypes import BOOL_TYPE, INT_TYPE_NAMES, KernelField, KernelTypeError, KernelTypes
from pybpf.providers.base import Args, Context
from pybpf.tracefs import TracepointField

TYPE_CHECKING = False
if TYPE_CHECKING:     # typing is not imported to compile (~2 ms)
    from collections.abc import Callable
    from typing import TypeVar

    R = TypeVar("R")
STRING_TYPE_NAME = re.compile(r"string(?:\[(\d+)\])?")
ARRAY_TYPE_NAME = re.compile(r"(u?int(?:8|16|32|64)|bool)\[(\d*)\]")    # 'uint8[8]', 'int8[]', 'bool[4]'


class KernelChecks:
    def kernel_types(self, span: Span) -> KernelTypes | None:
        """The running kernel's BTF, loaded on first need: programs without kernel types never
        pay for it."""
        if self._kernel_types is None:
            from pybpf import btf
            try:
                types = self.c_types.btf if self.c_types and self.c_types.btf else btf.vmlinux()
                self._kernel_types = KernelTypes(types)
            except btf.BtfError as e:
                self.error(f"kernel types are needed here, but {e}", span)
                return None
        user_btf = self.group.user_btf if self.group is not None else None
        if user_btf is not None:        # a uprobe's DWARF types, over the kernel's
            found = self._user_kernel_types.get(id(user_btf))
            if found is None:
                found = self._user_kernel_types[id(user_btf)] = KernelTypes(user_btf)
            return found
        return self._kernel_types

    def ask_kernel_types(self, span: Span, question: Callable[[KernelTypes], R]) -> R | None:
        """question(the kernel's types), or None after reporting at `span` why there is no
        answer (no BTF, or the KernelTypeError it raised)."""
        kt = self.kernel_types(span)
        if kt is None:
            return None
        try:
            return question(kt)
        except KernelTypeError as err:
            self.error(str(err), span)
            return None

    def retval(self, e: ast.Builtin):
        provider = self.group.provider
        if provider.retval and provider.context is Context.PT_REGS and not self.group.btf_return:
            return INT          # from ax, untyped
        if not provider.retval:
            self.error("The retval builtin can only be used with kretprobe, uretprobe and fexit "
                       "probes", e.span)
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

    def expr_FieldAccess(self, e: ast.FieldAccess):
        if isinstance(e.base, ast.Builtin) and e.base.name == "args":
            if self.context_refused("args", e.base.span):
                return None
            if self.group.provider.args is Args.BTF:
                return self.btf_argument(e)
            return self.tracepoint_field(e)
        base = self.expr(e.base)
        if base is None:
            return None
        if isinstance(base, T.TupleType) and base.names:     # a record's field
            if e.field not in base.names:
                self.error(f"Record of type '{base}' does not contain a field named '{e.field}'",
                           e.span)
                return None
            index = base.names.index(e.field)
            self.result.constants[e] = base.offsets()[index]
            return base.elements[index]
        if isinstance(base, T.StructType):      # a struct copied whole: its member, in place
            member = next(((off, t) for name, off, t in base.fields if name == e.field), None)
            if member is None:
                self.error(f"Struct/union of type '{base}' does not contain a field named "
                           f"'{e.field}'", e.span)
                return None
            self.result.constants[e] = member[0]
            bitfield = member[1]
            return T.IntType(8, bitfield.signed) if isinstance(bitfield, T.BitfieldType) else bitfield
        if not isinstance(base, (T.PointerType, T.RecordType)):
            self.error(f"Can not access field '{e.field}' on type '{base}'", e.span)
            return None
        found = self.ask_kernel_types(e.span, lambda kt: kt.member(base, e.field))
        if found is None:
            return None
        self.result.kernel_fields[e] = found
        return found.type

    def args_value(self, e: ast.Builtin) -> T.StructType | None:
        """`args` whole (print(args), $a = args, a map's value or key): each field read as
        args.NAME reads it, into a struct printed { .name = value, ... } (pointers in hex). The
        block's probes must have the same fields."""
        group = self.group
        if group.provider.args is Args.BTF:
            lists = {tuple(n for n, _ in group.btf_args.get(p.name, []) if n) for p in group.points}
            name = "args"
        else:
            lists = {tuple(f.name for f in group.formats[p.name].args) for p in group.points}
            fmt = group.formats[group.points[0].name]
            name = f"struct _tracepoint_{fmt.category}_{fmt.name}"
        if len(lists) != 1:
            self.error("args has different fields in the probes this block attaches to: read "
                       "them one by one (args.NAME)", e.span)
            return None
        fields, reads, offset = [], [], 0
        base = ast.Builtin("args", e.span)      # not e: e's type is the struct
        for field_name in lists.pop():
            access = ast.FieldAccess(base, field_name, False, e.span)
            t = self.expr(access)
            if t is None:
                return None
            found = next(iter(self.result.fields[access].values()))
            if isinstance(t, T.PointerType) or (found.is_pointer if isinstance(found, TracepointField)
                                                else found.read.kind == "pointer"):
                t = T.FormattedType("pointer")
            elif not isinstance(t, (T.IntType, T.StringType)):
                self.error(f"args.{field_name} ({t}) cannot be part of args as a value", e.span)
                return None
            fields.append((field_name, offset, t))
            reads.append(access)
            offset += (t.size + 7) & ~7
        if offset > MAX_TUPLE_SIZE:
            self.error(f"args takes {offset} bytes, more than the {MAX_TUPLE_SIZE} a value on the "
                       "BPF stack can have: read its fields instead (args.NAME)", e.span)
            return None
        self.result.args_values[e] = tuple(reads)
        return T.StructType(name, tuple(fields), offset)

    def btf_argument(self, e: ast.FieldAccess):
        kt = self.kernel_types(e.span)
        if kt is None:
            return None
        found: dict[str, ArgField] = self.result.fields.setdefault(e, {})
        types = set()
        for point in self.group.points:
            args = self.group.btf_args.get(point.name, [])
            index = next((i for i, (n, _) in enumerate(args) if n and n == e.field), None)
            refused = self.group.refused_args.get(point.name, {})
            if index is None and e.field in refused:
                self.error(f"args.{e.field} of {point.name}: {refused[e.field]}", e.span)
                return None
            if index is None:
                names = ", ".join(n for n, _ in args if n) or "none"
                self.error(f"{point.name} has no argument named '{e.field}' (its arguments: "
                           f"{names})", e.span)
                return None
            try:
                t, read = kt.convert(args[index][1], self.group.provider.user_memory)
            except KernelTypeError as err:
                self.error(f"args.{e.field}: {err}", e.span)
                return None
            if read.kind in ("record", "string", "array"):
                self.error(f"args.{e.field} is passed by value ({t}), which is not supported",
                           e.span)
                return None
            if self.group.provider.context is Context.PT_REGS and \
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
        if self.group.provider.args is not Args.TRACEPOINT_FORMAT:
            self.error("The args builtin can only be used with tracepoint, rawtracepoint, "
                       "kprobe, fentry and uprobe probes", e.base.span)
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
            if f.is_common:
                # the verifier refuses reads of a record's first 8 bytes (tp_prog_is_valid_access)
                self.error("BPF does not support accessing common tracepoint fields", e.span)
                return None
            found[point.name] = f
            types.add(self.field_type(f, fmt.category, e))
        if None in types:
            return None
        if len(types) > 1:
            self.error(f"args.{e.field} has different types in the probes this block attaches to",
                       e.span)
            return None
        return types.pop()

    def field_type(self, f: TracepointField, category: str, e) -> T.Type | None:
        if f.is_string:
            return T.StringType(self.string_size if f.data_loc else f.array_len)
        if f.data_loc or f.array_len is not None:
            self.error(f"args.{f.name} is an array ({f.declaration()}), which is not supported "
                       "yet", e.span)
            return None
        if f.is_pointer:
            return self.record_pointer(f.ctype, user=category == "syscalls", span=e.span) or UINT
        if f.size not in (1, 2, 4, 8):
            self.error(f"args.{f.name} has an unsupported size of {f.size} bytes", e.span)
            return None
        return T.IntType(8, f.signed)

    def casts_to_user(self) -> bool:
        """Whether an integer cast to a pointer here points into a process, as bpftrace decides
        it: in a uprobe or usdt probe, and in syscall tracepoints, whose arguments are the
        process's (execve's `*(uint64 *)(args->argv + 8)`)."""
        if self.group.provider.user_memory:
            return True
        points = self.group.points
        return (self.group.provider.args is Args.TRACEPOINT_FORMAT and bool(points)
                and all(point.target.partition(":")[0] == "syscalls" for point in points))

    def points_into_process(self, e) -> bool:
        """Whether the value e, cast to a pointer, addresses a process's memory, as bpftrace's
        address spaces decide it: a pointer keeps its own space, and so does an integer computed
        from one (`(uint64)$vfsmnt - offsetof(struct mount, mnt)`, as 0.26's opensnoop.bt walks
        its mounts); any other integer points into the process in a probe of one (casts_to_user)."""
        origin = self.pointer_origin(e)
        return origin.user if origin is not None else self.casts_to_user()

    def pointer_origin(self, e) -> T.PointerType | None:
        """The pointer whose address integer e is: e itself, or what it casts or offsets."""
        t = self.result.types.get(e)
        if isinstance(t, T.PointerType):
            return t
        if isinstance(e, ast.Cast):
            return self.pointer_origin(e.operand)
        if isinstance(e, ast.Binary) and e.op in ("+", "-"):
            return self.pointer_origin(e.left) or self.pointer_origin(e.right)
        return None

    def record_pointer(self, ctype: str, user: bool, span: Span) -> T.PointerType | None:
        """A tracepoint field `struct timespec * rqtp` as a typed pointer (args->rqtp->tv_sec),
        when BTF has the struct; a syscall's points into the process (bpftrace's address space).
        Other pointers stay integers."""
        words = [w for w in ctype.replace("*", " * ").split() if w not in ("const", "volatile")]
        if len(words) != 3 or words[0] not in ("struct", "union") or words[2] != "*":
            return None
        kt = self.kernel_types(span)
        if kt is None:
            return None
        try:
            pointer = kt.parse_type_name(" ".join(words))
        except KernelTypeError:
            return None
        return replace(pointer, user=user) if isinstance(pointer, T.PointerType) else None

    def kernel_type_name(self, text: str, span: Span) -> T.Type | None:
        if text in INT_TYPE_NAMES:
            return INT_TYPE_NAMES[text]
        return self.ask_kernel_types(span, lambda kt: kt.parse_type_name(text))

    def declared_type(self, text: str, span: Span) -> T.Type | None:
        """The type `let $x: TYPE` names: a string (max_strlen bytes, or string[N]), an integer
        array (uint8[4]), or a cast's type (integers, pointers, kernel records, typedefs)."""
        string = STRING_TYPE_NAME.fullmatch(text)
        if string:
            size = int(string[1]) if string[1] else self.string_size
            if size < 1:
                self.error(f"A string needs at least one byte, not {size}", span)
                return None
            return T.StringType(size)
        array = ARRAY_TYPE_NAME.fullmatch(text)
        if array:
            if not array[2]:
                self.error(f"A declared array needs its size: {array[1]}[N]", span)
                return None
            return T.ArrayType(INT_TYPE_NAMES[array[1]], int(array[2]))
        t = self.kernel_type_name(text, span)
        if isinstance(t, T.RecordType):         # a struct held whole, as `$s = *p` holds one
            if t.size > MAX_TUPLE_SIZE:
                self.error(f"{t} takes {t.size} bytes, more than the {MAX_TUPLE_SIZE} a "
                           "variable on the BPF stack can have: declare a pointer to it", span)
                return None
            return self.ask_kernel_types(span, lambda kt: kt.struct_layout(t.btf_id))
        return t

    def expr_Cast(self, e: ast.Cast):
        array = ARRAY_TYPE_NAME.fullmatch(e.type_name)
        target = None if array else self.kernel_type_name(e.type_name, e.span)
        operand = self.expr(e.operand)
        if operand is None or (target is None and not array):
            return None
        if array:
            element = INT_TYPE_NAMES[array[1]]
            count = int(array[2]) if array[2] else max(operand.size // element.size, 1)
            target = T.ArrayType(element, count)
            if not is_int(operand):
                self.error(f"Cannot cast {operand} to {target}", e.span)
                return None
        elif isinstance(operand, T.ArrayType) and isinstance(target, T.IntType):
            pass
        elif not isinstance(target, (T.IntType, T.PointerType)):
            self.error(f"Cannot cast to {target}: only to integers and pointers", e.span)
            return None
        elif not is_int(operand) and not (target == BOOL_TYPE and isinstance(operand, T.StringType)):
            self.error(f"Cannot cast {operand} to {target}", e.span)   # (bool)"s": not empty
            return None
        if isinstance(target, T.PointerType):
            target = replace(target, user=self.points_into_process(e.operand))
        if isinstance(target, T.ArrayType) or isinstance(operand, T.ArrayType):
            if target.size != operand.size:      # bpftrace: both must have the same size
                self.error(f"Cannot cast {operand} to {target}: the sizes differ "
                           f"({operand.size} and {target.size} bytes)", e.span)
                return None
        return target

    def pointer_index(self, e: ast.Index, base: T.PointerType):
        """p[i]: *(p + i), as in C: the element read from the kernel, i any integer."""
        index = self.expr(e.index)
        if index is None:
            return None
        if not is_int(index):
            self.error(f"The index must be an integer, not '{index}'", e.index.span)
            return None
        converted = self.ask_kernel_types(e.span, lambda kt: kt.convert(base.pointee, base.user))
        if converted is None:
            return None
        element, read = converted
        self.result.pointer_scale[e] = self.pointee_size(base, e.span)
        self.result.kernel_fields[e] = KernelField(0, element, read, base.pointee)
        return element

    def struct_value(self, e, t: T.RecordType) -> T.StructType | None:
        """A struct or union read whole from the kernel, where a value is needed (print(*p),
        $s = *p, a key or a tuple element): copied onto the BPF stack, so of bounded size."""
        if t.size > MAX_TUPLE_SIZE:
            self.error(f"{t} takes {t.size} bytes, more than the {MAX_TUPLE_SIZE} a value copied "
                       "onto the BPF stack can have: read its members instead", e.span)
            return None
        if isinstance(e, ast.Ternary):          # each branch copies its own struct
            branches = [self.struct_value(b, t) for b in (e.then, e.otherwise)]
            return self.set(e, branches[0]) if None not in branches else None
        value = self.ask_kernel_types(e.span, lambda kt: kt.struct_layout(t.btf_id, t.user))
        if value is None:
            return None
        self.result.struct_copies.add(e)
        return self.set(e, value)

    def expr_Index(self, e: ast.Index):
        base = self.expr(e.base)
        if base is None:
            return None
        if isinstance(base, T.PointerType) and base.pointee:
            return self.pointer_index(e, base)
        if not isinstance(base, (T.ArrayType, T.TupleType, T.StringType)) or \
                getattr(base, "names", ()):
            self.error(f"The array index operator [] can only be used on arrays, tuples, strings "
                       f"and typed pointers, found {base}", e.span)
            return None
        count = base.count if isinstance(base, T.ArrayType) else \
            base.size if isinstance(base, T.StringType) else len(base.elements)
        index = self.fold(e.index)
        if index is None and not isinstance(base, T.TupleType):
            # bpftrace 0.24+: checked at run time; an index out of bounds reads 0
            t = self.expr(e.index)
            if t is None:
                return None
            if not isinstance(t, T.IntType):
                self.error(f"The index must be an integer, not '{t}'", e.index.span)
                return None
            return CHAR if isinstance(base, T.StringType) else base.element
        if index is None:
            self.error("A tuple's index must be a constant integer", e.index.span)
            return None
        self.set(e.index, INT)
        if not 0 <= index < count:
            self.error(f"The index {index} is out of bounds for {base}", e.index.span)
            return None
        self.result.constants[e] = index
        if isinstance(base, T.StringType):
            return CHAR         # a string is an array of C chars (bpftrace 0.24+: "/"[0])
        return base.element if isinstance(base, T.ArrayType) else base.elements[index]

    def expr_Deref(self, e: ast.Deref):
        t = self.expr(e.operand)
        if t is None:
            return None
        if not isinstance(t, T.PointerType) or not t.pointee:
            self.error(f"Can not dereference type '{t}': only typed kernel pointers", e.span)
            return None
        converted = self.ask_kernel_types(e.span, lambda kt: kt.convert(t.pointee, t.user))
        if converted is None:
            return None
        pointee, read = converted
        self.result.kernel_fields[e] = KernelField(0, pointee, read, t.pointee)
        return pointee

    def expr_AddressOf(self, e: ast.AddressOf):
        if self.expr(e.operand) is None:
            return None
        found = self.result.kernel_fields.get(e.operand)
        if found is None or not found.type_id:
            self.error("Can only take the address of a kernel structure's member (&p->field) or "
                       "of *p (a bitfield has none)", e.span)
            return None
        kt = self.kernel_types(e.span)
        return kt.pointer_to(found.type_id, found.read.user) if kt else None

    def expr_SizeOf(self, e: ast.SizeOf):
        if e.type_name is not None:
            t = self.kernel_type_name(e.type_name, e.span)
            size = None if t is None else t.size
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

    def pointee_size(self, p: T.PointerType, span: Span) -> int:
        """C scales pointer arithmetic by the pointee's size (void * by 1, as GCC)."""
        kt = self.kernel_types(span)
        if kt is None or not p.pointee:
            return 1
        try:
            return kt.btf.sizeof(p.pointee)
        except Exception:
            return 1
