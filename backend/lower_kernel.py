"""Lowering of what reads the kernel: probe contexts (tracepoint records, raw tracepoint and fentry
argument arrays, kprobe registers), kernel memory through typed pointers, casts and sizes.

Mixed into pybpf.backend.codegen.FunctionBuilder.
"""

from __future__ import annotations

from llvmlite import ir

from pybpf import ast
from pybpf import types as T
from pybpf.backend.irutil import I32, I64, PTR, c64
from pybpf.ktypes import KernelRead
from pybpf.checked import KPROBE_ARG_REGISTERS, PT_REGS_AX, REGISTER_PROVIDERS, ArgField
from pybpf.uapi.bpf import BpfFunc

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
        of the context (fentry/fexit and raw tracepoints)."""
        if self.program.group.provider in REGISTER_PROVIDERS:
            return self.load_context(KPROBE_ARG_REGISTERS[index])
        return self.load_context(8 * index)

    def retval(self, e) -> ir.Value:
        reads = self.checked.retvals.get(e)
        if self.program.group.provider in REGISTER_PROVIDERS:
            value = self.load_context(PT_REGS_AX)
        else:
            # fexit: the context is the arguments' u64s, then the return value.
            value = self.load_argument(len(self.program.group.btf_args[self.point.name]))
        return self.narrow(value, reads[self.point.name]) if reads else value

    def read_kernel(self, address: ir.Value, t: T.Type, read: KernelRead) -> ir.Value:
        """A value of kernel memory at `address`, through bpf_probe_read_kernel."""
        if read.kind == "record":
            return address
        if read.kind == "string":
            buf = self.alloca(t.size, "kstr")
            self.zero(buf, t.size)
            self.helper(BpfFunc.probe_read_kernel, buf, c64(read.size),
                        self.b.inttoptr(address, PTR))
            return buf
        buf = self.alloca(8, "kval")
        self.store64(c64(0), buf)
        self.helper(BpfFunc.probe_read_kernel, buf, c64(read.size), self.b.inttoptr(address, PTR))
        return self.narrow(self.load64(buf), read)

    def kernel_address(self, e) -> ir.Value:
        """Where a kernel member (p->field) or *p lives, without reading it."""
        if isinstance(e, ast.Deref):
            return self.expr(e.operand)
        found = self.checked.kernel_fields[e]
        base = self.expr(e.base)
        return self.b.add(base, c64(found.offset)) if found.offset else base

    def expr_AddressOf(self, e):
        return self.kernel_address(e.operand)

    def expr_FieldAccess(self, e):
        if e in self.checked.kernel_fields:
            found = self.checked.kernel_fields[e]
            return self.read_kernel(self.kernel_address(e), found.type, found.read)
        field = self.checked.fields[e][self.point.name]
        if isinstance(field, ArgField):
            return self.narrow(self.load_argument(field.index), field.read)
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
        t = self.type_of(e)
        if isinstance(t, T.IntType) and t.size < 8:
            return self.narrow(value, KernelRead("int", t.size, t.signed))
        return value

    def expr_SizeOf(self, e):
        return c64(self.checked.constants[e])

    expr_OffsetOf = expr_SizeOf
