"""Lowering of the functions: printf, print, clear, zero, delete, exit, time and str. Everything
but str and delete becomes a ring-buffer record for the runtime.

Mixed into pybpf.backend.codegen.FunctionBuilder.
"""

from __future__ import annotations

from llvmlite import ir

from pybpf import ast
from pybpf import types as T
from pybpf.backend.irutil import I8, PTR, c64
from pybpf.program import EXIT_MAP, EventKind
from pybpf.uapi.bpf import BpfFunc

class CallLowering:
    def expr_Call(self, e):
        return getattr(self, "call_" + e.name)(e)

    def call_printf(self, e):
        index = self.plan.printf_index[e]
        spec = self.plan.printfs[index]
        args = [(self.expr(a), t) for a, t in zip(e.args[1:], spec.args)]
        self.emit_event(EventKind.PRINTF, index, args)
        return c64(0)

    def call_print(self, e):
        arg = e.args[0]
        if isinstance(arg, ast.Map):
            self.emit_event(EventKind.PRINT, self.plan.map_index(arg.name))
        else:
            index = self.plan.printf_index[e]
            self.emit_event(EventKind.VALUE, index,
                            [(self.expr(arg), self.plan.printfs[index].args[0])])
        return c64(0)

    def call_clear(self, e):
        self.emit_event(EventKind.CLEAR, self.plan.map_index(e.args[0].name))
        return c64(0)

    def call_zero(self, e):
        self.emit_event(EventKind.ZERO, self.plan.map_index(e.args[0].name))
        return c64(0)

    def call_delete(self, e):
        m = e.args[0]
        spec = self.plan.maps[m.name]
        self.helper(BpfFunc.map_delete_elem, self.map_ptr(spec.symbol), self.key(spec, m))
        return c64(0)

    def call_exit(self, e):
        # The flag first: the runtime ends on it even if the record below finds the ring full.
        self.with_array_element(EXIT_MAP, 0, "exit_flag", lambda flag: self.store64(c64(1), flag))
        self.emit_event(EventKind.EXIT, 0)
        # As bpftrace: exit() also ends the probe; what follows it is unreachable
        self.b.ret(c64(0))
        self.b.position_at_end(self.new_block("after_exit"))
        return c64(0)

    def call_time(self, e):
        self.emit_event(EventKind.TIME, self.plan.time_index[e])
        return c64(0)

    def call_str(self, e):
        t = self.type_of(e)
        arg_t = self.type_of(e.args[0])
        value = self.expr(e.args[0])
        buf = self.alloca(t.size, "str")
        if isinstance(arg_t, T.StringType):
            self.copy(buf, t.size, value, min(arg_t.size, t.size))
            if t.size < arg_t.size:
                # Slots copy 8 bytes at a time: terminate the cut string explicitly.
                self.b.store(ir.Constant(I8, 0), self.gep(buf, t.size - 1))
            return buf
        self.zero(buf, t.size)
        self.helper(BpfFunc.probe_read_str, buf, c64(t.size), self.b.inttoptr(value, PTR))
        return buf
