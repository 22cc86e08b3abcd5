"""Lowering of what reads the kernel: probe contexts (tracepoint records, raw tracepoint and fentry
argument arrays, kprobe registers), kernel memory through typed pointers, casts and sizes.

Mixed into pybpf.backend.codegen.FunctionBuilder.
"""

from __future__ import annotations

from llvmlite import ir

from pybpf import ast
from pybpf import types as T
from pybpf.backend.irutil import I8, I32, I64, PTR, c64, is_buffer, opaque
from pybpf.backend.lower_helpers import ARRAY_ACCESS_OOB
from pybpf.ktypes import KernelRead
from pybpf.checked import KPROBE_ARG_REGISTERS, PT_REGS_AX, ArgField
from pybpf.providers.base import Context
from pybpf.resources import SYSCALL_ARGS_OFFSET, SYSCALL_NR_FIELD
from pybpf.uapi.bpf import BpfFunc
from pybpf.uapi.ptrace import (CODE_SEGMENT, PT_REGS_OFFSETS, SYSCALL_ARGUMENT_REGISTERS,
                               SYSCALL_NUMBER_REGISTER, USER_CS)

class KernelLowering:
    def load_context(self, offset: int, width: int = 8) -> ir.Value:
        """A direct load from the program's context (pt_regs, raw tracepoint args, ...)."""
        raw = self.b.load(self.gep(self.ctx, offset), typ=ir.IntType(width * 8), align=width)
        return raw if width == 8 else self.b.zext(raw, I64)

    def narrow(self, value: ir.Value, read: KernelRead) -> ir.Value:
        """An integer of read.size bytes (or a bitfield) held in an i64, widened as C does."""
        bits = read.bits or read.size * 8
        if read.bit_shift:
            value = self.b.lshr(value, c64(read.bit_shift))
        if bits >= 64 or read.kind == "pointer":
            return value
        shift = c64(64 - bits)
        value = self.b.shl(value, shift)
        return self.b.ashr(value, shift) if read.signed else self.b.lshr(value, shift)

    def load_argument(self, index: int) -> ir.Value:
        """A function's argument: from its register in pt_regs (kprobes), or the index-th u64
        of the context (fentry/fexit and raw tracepoints); a USDT site's, where its note says."""
        site_args = self.program.group.site_args
        if site_args:
            return self.load_site_argument(site_args[self.point][index])
        if self.program.group.provider.context is Context.PT_REGS:
            return self.load_context(KPROBE_ARG_REGISTERS[index])
        return self.load_context(8 * index)

    def load_site_argument(self, arg) -> ir.Value:
        """A USDT argument (pybpf.usdt_notes.UsdtArg), widened to 64 bits as its size and sign
        say: a constant, a register (or its low bytes, or ah's bits 8..15), or user memory at
        a register + displacement (+ index * scale)."""
        if arg.kind == "constant":
            value = c64(arg.value)
        elif arg.kind == "register":
            value = self.load_context(PT_REGS_OFFSETS[arg.register])
            if arg.reg_shift:
                value = self.b.lshr(value, c64(arg.reg_shift))
            value = self.narrow(value, KernelRead("int", arg.reg_size, False))
        else:
            address = self.b.add(self.load_context(PT_REGS_OFFSETS[arg.register]), c64(arg.value))
            if arg.index:
                scaled = self.b.mul(self.load_context(PT_REGS_OFFSETS[arg.index]), c64(arg.scale))
                address = self.b.add(address, scaled)
            buf = self.alloca(8, "usdt_arg")
            self.store64(c64(0), buf)
            self.helper(BpfFunc.probe_read_user, buf, c64(arg.size), self.b.inttoptr(address, PTR))
            value = self.load64(buf)
        return self.narrow(value, KernelRead("int", arg.size, arg.signed))

    # Programs shared by syscall tracepoints (resources.SyscallFilter) -------------------------

    def filter_syscall(self) -> None:
        """The entry of a shared syscall program: return at once unless the syscall is one of the
        program's own, made by 64-bit code (the per-syscall tracepoints skip 32-bit tasks' calls,
        whose numbers mean other calls); `probe` then names it."""
        syscall_filter = self.program.syscall_filter
        if syscall_filter.raw_tracepoint == "sys_enter":
            self.syscall_number = self.load_context(8)            # sys_enter(regs, id)
        else:
            self.syscall_number = self.load_syscall_register(SYSCALL_NUMBER_REGISTER)
        reads_probe = ast.reads_builtin(self.program.group.probe, "probe")
        cases = [(number, probe_id if reads_probe else 0)
                 for number, probe_id in syscall_filter.numbers]
        self.probe_value = self.dispatch_syscall(self.syscall_number, cases, reads_probe)
        native = self.b.icmp_unsigned("==", self.load_syscall_register(CODE_SEGMENT), c64(USER_CS))
        run, skip = self.branch_if(native, "native_syscall", "compat_syscall")
        self.b.position_at_end(skip)
        self.b.ret(c64(0))
        self.b.position_at_end(run)

    def dispatch_syscall(self, number: ir.Value, cases: list[tuple[int, int]],
                         phi: bool) -> ir.Value | None:
        """Branch on the syscall number: a binary search over runs of consecutive numbers that
        share a value, so a wildcard over every syscall costs a few compares. Leaves the builder
        where the number matched (other numbers return 0); the matched value when `phi`."""
        runs: list[list[int]] = []                          # [first, last, value]
        for n, value in sorted(cases):
            if runs and runs[-1][1] + 1 == n and runs[-1][2] == value:
                runs[-1][1] = n
            else:
                runs.append([n, n, value])
        kept, other = self.new_block("own_syscall"), self.new_block("other_syscall")
        incoming: list[tuple[int, ir.Block]] = []

        def search(lo: int, hi: int) -> None:
            if hi - lo == 1:
                first, last, value = runs[lo]
                # unsigned: a negative number (no syscall) is out of every range
                inside = self.b.icmp_unsigned("<=", self.b.sub(number, c64(first)), c64(last - first))
                incoming.append((value, self.b.block))
                self.b.cbranch(inside, kept, other)
                return
            mid = (lo + hi) // 2
            below, above = self.new_block("below"), self.new_block("above")
            self.b.cbranch(self.b.icmp_unsigned("<", number, c64(runs[mid][0])), below, above)
            self.b.position_at_end(below)
            search(lo, mid)
            self.b.position_at_end(above)
            search(mid, hi)

        search(0, len(runs))
        self.b.position_at_end(other)
        self.b.ret(c64(0))
        self.b.position_at_end(kept)
        if not phi:
            return None
        value = self.b.phi(I64, "probe")
        for v, block in incoming:
            value.add_incoming(c64(v), block)
        return value

    def load_syscall_register(self, offset: int) -> ir.Value:
        """A register of the syscall's saved user pt_regs: a BTF-typed pointer from
        bpf_task_pt_regs(bpf_get_current_task_btf()), read directly. Looked up once, by
        filter_syscall, at a point that dominates the rest of the program."""
        if self.syscall_regs is None:
            task = self.helper(BpfFunc.get_current_task_btf)
            self.syscall_regs = self.b.inttoptr(self.helper(BpfFunc.task_pt_regs, task), PTR)
        return self.b.load(self.gep(self.syscall_regs, offset), typ=I64, align=8)

    def syscall_field(self, field) -> ir.Value:
        """args.NAME of a shared syscall program, from the raw tracepoint's arguments and the
        syscall's registers rather than the perf record (see resources._shareable_layout)."""
        if field.name == SYSCALL_NR_FIELD:
            return self.syscall_number
        if self.program.syscall_filter.raw_tracepoint == "sys_exit":
            return self.load_context(8)                         # sys_exit(regs, ret)
        index = (field.offset - SYSCALL_ARGS_OFFSET) // 8
        value = self.load_syscall_register(SYSCALL_ARGUMENT_REGISTERS[index])
        if field.size == 8:
            return value
        narrow = self.b.trunc(value, ir.IntType(field.size * 8))      # an int argument: its type's
        return self.b.sext(narrow, I64) if field.signed else self.b.zext(narrow, I64)

    def retval(self, e) -> ir.Value:
        reads = self.checked.retvals.get(e)
        if self.program.group.provider.context is Context.PT_REGS:
            value = self.load_context(PT_REGS_AX)
        else:
            # fexit: the context is the arguments' u64s, then the return value.
            value = self.load_argument(len(self.program.group.btf_args[self.point.name]))
        return self.narrow(value, reads[self.point.name]) if reads else value

    def read_kernel(self, address: ir.Value, t: T.Type, read: KernelRead) -> ir.Value:
        """A value of kernel memory at `address`, through bpf_probe_read_kernel (of the process's
        memory, read.user, through bpf_probe_read_user)."""
        if read.kind == "record":
            return address
        helper = BpfFunc.probe_read_user if read.user else BpfFunc.probe_read_kernel
        if read.kind in ("string", "array"):
            buf = self.alloca(t.size, "kstr")
            self.zero(buf, t.size)
            self.helper(helper, buf, c64(read.size), self.b.inttoptr(address, PTR))
            return buf
        buf = self.alloca(8, "kval")
        self.store64(c64(0), buf)
        self.helper(helper, buf, c64(read.size), self.b.inttoptr(address, PTR))
        return self.narrow(self.load64(buf), read)

    def kernel_address(self, e) -> ir.Value:
        """Where a kernel member (p->field) or *p lives, without reading it."""
        if isinstance(e, ast.Deref):
            return self.expr(e.operand)
        if isinstance(e, ast.Index):                # p[i]: p + i * the element's size
            scale = c64(self.checked.pointer_scale[e])
            return self.b.add(self.expr(e.base), self.b.mul(self.expr(e.index), scale))
        found = self.checked.kernel_fields[e]
        base = self.expr(e.base)
        return self.b.add(base, c64(found.offset)) if found.offset else base

    def expr_AddressOf(self, e):
        return self.kernel_address(e.operand)

    def expr_FieldAccess(self, e):
        base_t = self.checked.types.get(e.base)
        if isinstance(base_t, (T.StructType, T.TupleType)):   # a member of a struct or record on the stack
            buf, t = self.gep(self.expr(e.base), self.checked.constants[e]), self.type_of(e)
            bits = next((f for name, _, f in base_t.fields if name == e.field and
                         isinstance(f, T.BitfieldType)), None) if isinstance(base_t, T.StructType) else None
            if bits is not None:
                return self.narrow(self.load_int(buf, 0, T.IntType(bits.size, False)),
                                   KernelRead("int", bits.size, bits.signed, bits.shift, bits.bits))
            return buf if is_buffer(t) else self.load_int(buf, 0, t)
        if e in self.checked.kernel_fields:
            found = self.checked.kernel_fields[e]
            return self.read_kernel(self.kernel_address(e), found.type, found.read)
        field = self.checked.fields[e][self.point.name]
        if isinstance(field, ArgField):
            return self.narrow(self.load_argument(field.index), field.read)
        if self.program.syscall_filter is not None:
            return self.syscall_field(field)
        t = self.type_of(e)
        b = self.b
        address = self.gep(self.ctx, field.offset)
        if isinstance(t, T.StringType):
            buf = self.alloca(t.size, "field")
            self.zero(buf, t.size)
            if field.data_loc:
                loc = b.zext(b.load(address, typ=I32, align=4), I64)
                src = b.add(b.ptrtoint(self.ctx, I64), b.and_(loc, c64(0xFFFF)))
                self.helper(BpfFunc.probe_read_kernel_str, buf, c64(t.size),
                            b.inttoptr(src, PTR))
            else:
                self.helper(BpfFunc.probe_read_kernel, buf, c64(min(t.size, field.size)),
                            address)
            return buf
        width = ir.IntType(field.size * 8)
        raw = b.load(address, typ=width, align=field.size)
        if field.size == 8:
            return raw
        return b.sext(raw, I64) if field.signed and not field.is_pointer else b.zext(raw, I64)

    def expr_Deref(self, e):
        found = self.checked.kernel_fields[e]
        return self.read_kernel(self.expr(e.operand), found.type, found.read)

    def expr_Cast(self, e):
        value = self.expr(e.operand)
        t, operand = self.type_of(e), self.type_of(e.operand)
        if isinstance(t, T.ArrayType):                  # the integer's bytes, little-endian
            buf = self.alloca(8, "array")
            self.store64(value, buf)
            return buf
        if isinstance(operand, T.ArrayType):
            value = self.load_int(value, 0, t)
        if isinstance(t, T.IntType) and t.boolean:          # (bool)x: x is not 0 (a string: not empty)
            if isinstance(operand, T.StringType):
                value = self.load_int(value, 0, T.IntType(1, False))
            return self.from_bool(self.to_bool(value))
        if isinstance(t, T.IntType) and t.size < 8:
            return self.narrow(value, KernelRead("int", t.size, t.signed))
        return value

    def load_int(self, buf, offset: int, t: T.IntType):
        """An integer of t.size bytes in a stack buffer, widened to i64 as C does."""
        raw = self.b.load(self.gep(buf, offset), typ=self.integer_type(t.size), align=1)
        if t.size == 8:
            return raw
        return self.b.sext(raw, I64) if t.signed else self.b.zext(raw, I64)

    def expr_Index(self, e):
        if e in self.checked.kernel_fields:
            found = self.checked.kernel_fields[e]
            return self.read_kernel(self.kernel_address(e), found.type, found.read)
        base_t, t = self.type_of(e.base), self.type_of(e)
        base, index = self.expr(e.base), self.checked.constants.get(e)
        if isinstance(base_t, T.TupleType):
            offset = base_t.offsets()[index]
            return self.gep(base, offset) if is_buffer(t) else self.load64(base, offset)
        element_size = base_t.element.size if isinstance(base_t, T.ArrayType) else 1   # a string's char
        if index is None:
            return self.variable_index(e, base, base_t, t, element_size)
        offset = index * element_size
        if is_buffer(t):
            element = self.gep(base, offset)
            return element if offset % 8 == 0 and t.size % 8 == 0 else self.realigned(element, t.size)
        return self.load_int(base, offset, t)

    def realigned(self, src: ir.Value, size: int) -> ir.Value:
        """A copy of the `size` bytes at `src` (an element of an array of structs, at any offset)
        in a buffer as buffers are: 8-aligned, zero-padded to a multiple of 8."""
        buf = self.alloca(size, "element")
        self.zero(buf, size)
        offset = 0
        while offset < size:
            width = next(w for w in (8, 4, 2, 1) if w <= size - offset)
            part = self.b.load(self.gep(src, offset), typ=ir.IntType(width * 8), align=1)
            self.b.store(part, self.gep(buf, offset), align=1)
            offset += width
        return buf

    def variable_index(self, e, base, base_t, t, element_size: int) -> ir.Value:
        """a[i] with i known at run time: the element when i is in bounds (unsigned, so a
        negative i is not), else 0 (a zeroed element) and bpftrace 0.24+'s warning."""
        count = base_t.count if isinstance(base_t, T.ArrayType) else base_t.size
        index = self.expr(e.index)
        inside = self.b.icmp_unsigned("<", index, c64(count))
        safe = self.b.select(inside, index, c64(0))
        element = opaque(self.b.gep(base, [self.b.mul(safe, c64(element_size))], source_etype=I8))
        if is_buffer(t):
            zeroed = self.alloca(t.size, "out_of_bounds")
            self.zero(zeroed, t.size)
            value = self.b.select(inside, element, zeroed)
        else:
            value = self.b.select(inside, self.load_int(element, 0, t), c64(0))
        # The warning's branch after the element's address: in one basic block with the index, so
        # LLVM folds a constant index there (across blocks, base + a 0-or-1 index becomes an `or`
        # on the stack pointer, which the verifier refuses).
        self.warn_at_run_time(self.b.not_(inside), ARRAY_ACCESS_OOB, e.span)
        return value if not is_buffer(t) or element_size % 8 == 0 else self.realigned(value, t.size)

    def expr_SizeOf(self, e):
        return c64(self.checked.constants[e])

    expr_OffsetOf = expr_SizeOf
