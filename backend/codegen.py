"""Lower pass: the checked, laid-out program -> LLVM IR for the BPF target (pure: no syscalls).

    lowered = generate_ir(checked, plan, diags, ringbuf_size)   # .ir_text: a function per program

Conventions the runtime relies on (pybpf.program): every integer is an i64 in a slot of 8 bytes;
strings and tuples live in stack buffers whose size is rounded up to 8 and fully initialised, so
keys hash the same whatever wrote them; ring-buffer records start with (kind | index << 32).
Aggregations update per-CPU maps with one lookup and a plain add: no atomics (see design notes on
LLVM's atomicrmw miscompile).
"""

from __future__ import annotations

import mmap

from pybpf import ast, builtins, cpus
from pybpf import types as T
from pybpf.backend.debuginfo import DebugInfo
from pybpf.backend.irutil import (I8, I32, I64, PTR, HelperCallee, c64, ir, is_buffer, opaque,
                                  slot, upper_bound)
from pybpf.backend.lower_helpers import (CHECKED, WARN_BY_DEFAULT, HelperChecks, HelperSites,
                                         RuntimeWarnings)
from pybpf.backend.lower_kernel import KernelLowering
from pybpf.backend.lower_loops import LoopLowering, frame_depth
from pybpf.backend.lower_maps import MapLowering
from pybpf.diagnostics import Diagnostics
from pybpf.program import (EVENT_RING_MAX_SIZE, EVENT_RING_RECORDS_PER_CPU, EVENTS_MAP, EXIT_MAP,
                           HELPER_ERRORS_MAP, LOST_MAP, SCRATCH_MAP, START_MAP, START_SLOTS,
                           SKB_OUTPUT_MAP, START_TRACED, STACKS_MAP, HelperErrorSite)
from pybpf.records import record
from pybpf.resources import BpfProgramPlan, ResourcePlan
from pybpf.checked import CheckedScript, param_int
from pybpf.ktypes import KernelRead
from pybpf.uapi.bpf import BPF_ANY, BPF_PSEUDO_BTF_ID, BPF_RINGBUF_HDR_SZ, PERF_MAX_STACK_DEPTH, BpfFunc, BpfMapType

MAP_DEF = ir.LiteralStructType([I32] * 5)
STACK_LIMIT = 512
# A per-CPU array's value is at most the kernel's per-CPU allocation unit (PCPU_MIN_UNIT_SIZE).
SCRATCH_LIMIT = 32768
TRIPLE = "bpfel"
DATA_LAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"


class StackOverflow(Exception):
    """A probe's buffers outgrew the stack and the scratch space after it."""

    def __init__(self, used: int, span):
        super().__init__(used)
        self.used, self.span = used, span


class ModuleBuilder:
    """Owns the LLVM module: map definitions, the license, one function per program."""

    def __init__(self, checked: CheckedScript, plan: ResourcePlan, diags: Diagnostics,
                 filter_pid: bool = False, warning_level: int = WARN_BY_DEFAULT, spill_room: int = 0):
        self.checked, self.plan = checked, plan
        self.filter_pid = filter_pid
        # Stack bytes left to LLVM's own spill slots: values past STACK_LIMIT - spill_room go to
        # the scratch space (compile_source asks for some when LLVM found the stack too small).
        self.spill_room = spill_room
        self.module = ir.Module(name="pybpf")
        self.module.triple = TRIPLE
        self.module.data_layout = DATA_LAYOUT
        self.debug = DebugInfo(self.module, diags.filename)
        self.helper_sites = HelperSites(diags, warning_level)
        self.runtime_warnings = RuntimeWarnings(diags, warning_level)
        self.maps: dict[str, ir.GlobalVariable] = {}
        self.map_fields: dict[str, list[int]] = {}     # symbol -> its definition's fields
        # ring-buffer writes the code makes (each takes the map's pointer), and how many are exit()'s
        # and helper-error warnings
        self.event_writes = self.exit_writes = self.warning_writes = 0
        self.callback_count = 0          # for-loop and len() callbacks, numbered module-wide
        self.largest_record = 0        # bytes, the 8-byte header of ours included (not the kernel's)
        self.define_map(EVENTS_MAP, BpfMapType.RINGBUF, 0, 0, mmap.PAGESIZE)   # sized by generate_ir
        self.define_map(LOST_MAP, BpfMapType.PERCPU_ARRAY, 4, 8, 1)
        self.define_map(START_MAP, BpfMapType.ARRAY, 4, 8, START_SLOTS)
        self.define_map(EXIT_MAP, BpfMapType.ARRAY, 4, 8, 1)
        self.define_map(HELPER_ERRORS_MAP, BpfMapType.PERCPU_ARRAY, 4, 8, 1)   # sized once lowered
        if any(isinstance(t, T.StackType) for t in checked.types.values()):
            self.define_map(STACKS_MAP, BpfMapType.STACK_TRACE, 4, 8 * PERF_MAX_STACK_DEPTH,
                            plan.stack_entries)
        if plan.pcap_files:
            # a slot per possible CPU, each the fd of that CPU's perf buffer (pybpf.runtime.perfbuf)
            self.define_map(SKB_OUTPUT_MAP, BpfMapType.PERF_EVENT_ARRAY, 4, 4, cpus.cpu_slots())
        for spec in plan.maps.values():
            self.define_map(spec.symbol, spec.bpf_map_type, spec.key_size, spec.value_size,
                            spec.bpf_max_entries)
        # a map helper's first argument -> the user map's name, for its failures' sites
        self.map_names = {id(self.maps[spec.symbol]): spec.name for spec in plan.maps.values()}
        lic = ir.GlobalVariable(self.module, ir.ArrayType(I8, 4), "_license")
        lic.initializer = ir.Constant(ir.ArrayType(I8, 4), bytearray(b"GPL\0"))
        lic.section = "license"
        opaque(lic)

    def define_map(self, symbol: str, map_type: int, key: int, value: int, entries: int) -> None:
        g = ir.GlobalVariable(self.module, MAP_DEF, symbol)
        self.map_fields[symbol] = [map_type, key, value, entries, 0]
        g.initializer = ir.Constant(MAP_DEF, [ir.Constant(I32, v) for v in self.map_fields[symbol]])
        g.section = "maps"
        g.align = 4
        self.maps[symbol] = opaque(g)

    def set_size(self, symbol: str, entries: int, value_size: int | None = None) -> None:
        fields = self.map_fields[symbol]
        fields[3] = entries
        if value_size is not None:
            fields[2] = value_size
        self.module.get_global(symbol).initializer = ir.Constant(MAP_DEF, [ir.Constant(I32, v) for v in fields])

    def scratch_entry(self) -> int:
        """The index of a new program's entry in SCRATCH_MAP (made with the first); its sizes are
        set once every program is lowered (finish_scratch)."""
        if SCRATCH_MAP not in self.maps:
            self.define_map(SCRATCH_MAP, BpfMapType.PERCPU_ARRAY, 4, 8, 1)
            self.scratch_sizes: list[int] = []
        self.scratch_sizes.append(0)
        return len(self.scratch_sizes) - 1

    def finish_scratch(self) -> None:
        if SCRATCH_MAP in self.maps:
            self.set_size(SCRATCH_MAP, len(self.scratch_sizes), max(self.scratch_sizes))


class FunctionBuilder(MapLowering, KernelLowering, LoopLowering, HelperChecks):
    """Lowers one probe body into one BPF function. Builtins and functions lower themselves
    (pybpf.builtins), through this builder's methods."""

    pointer_type = PTR     # for lowerings (pybpf.builtins), which do not import llvmlite
    byte_type = I8

    def __init__(self, mod: ModuleBuilder, program: BpfProgramPlan, diags: Diagnostics,
                 name: str = "", params: int = 1, span=None):
        """The program's function; or, given a name, one of its callbacks (lower_loops), a
        function of `params` pointers in the same section, for the code at `span`."""
        self.mod, self.program, self.diags = mod, program, diags
        self.checked, self.plan = mod.checked, mod.plan
        self.point = program.points[0]          # the field layout is the same for all points
        fnty = ir.FunctionType(I64, [PTR] * params)
        self.fn = ir.Function(mod.module, fnty, name or program.function)
        self.fn.section = program.section
        self.fn.attributes.add("nounwind")
        self.ctx = self.fn.args[0]
        entry = self.fn.append_basic_block("entry")
        self.allocas = ir.IRBuilder(entry)
        body = self.fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        span = span or program.group.probe.span
        self.scope = mod.debug.subprogram(self.fn.name, span)
        self.fn.set_metadata("dbg", self.scope)
        self.allocas.debug_metadata = self.b.debug_metadata = self.location(span)
        self.stack_used = 0
        self.span = self.statement_span = span
        # Buffers past the stack: this program's entry of SCRATCH_MAP, looked up once in the
        # entry block and null-checked in `scratch_block`, which holds each buffer's address.
        self.scratch_block: ir.Block | None = None
        self.scratch_base: ir.Value | None = None
        self.scratch_lookup: ir.Value | None = None
        self.scratch_index = self.scratch_size = 0
        self.failure_buffer: ir.Value | None = None     # lower_helpers.helper_error_buffer
        self.temporaries: list[tuple[int, ir.Value]] = []
        self.free: dict[int, list[ir.Value]] = {}
        self.variables: dict = {}            # VarBinding -> its stack slot
        self.loops: list[tuple[ir.Block, ir.Block]] = []     # (continue target, break target)
        # Shared syscall programs (lower_kernel.filter_syscall): the number, its pt_regs, `probe`
        # (also the cookie, in a program other points share).
        self.syscall_number: ir.Value | None = None
        self.syscall_regs: ir.Value | None = None
        self.probe_value: ir.Value | None = None
        self.callbacks: list[FunctionBuilder] = []     # the callbacks this function passes
        self.length_callback: ir.Function | None = None  # len()'s, made once per function

    # Infrastructure --------------------------------------------------------------------------

    def type_of(self, node) -> T.Type:
        return self.checked.types[node]

    def alloca(self, size: int, name: str = "", temporary: bool = True) -> ir.Value:
        """A buffer: on the stack (in the entry block) while it fits, else in the program's
        per-CPU scratch space. Temporaries return to a pool when the statement that made them
        ends, so the next statement reuses them: nothing outlives a statement but variables (and
        what maps copy). A plain probe never reaches the scratch space, and pays nothing for it."""
        size = max(8, (size + 7) & ~7)
        pool = self.free.get(size)
        if temporary and pool:
            a = pool.pop()
        elif self.stack_used + size > STACK_LIMIT - 8 - self.mod.spill_room:   # 8: the scratch lookup's key
            a = self.scratch(size, name)
        else:
            self.stack_used += size
            with self.allocas.goto_entry_block():
                self.allocas.position_at_start(self.allocas.block)
                a = self.allocas.alloca(ir.ArrayType(I8, size), name=name)
            a.align = 8
            a = opaque(a)
        if temporary:
            self.temporaries.append((size, a))
        return a

    def scratch(self, size: int, name: str) -> ir.Value:
        if self.scratch_block is None:
            self.open_scratch()
        offset = self.scratch_size
        self.scratch_size += size
        self.mod.scratch_sizes[self.scratch_index] = self.scratch_size
        if self.scratch_size > SCRATCH_LIMIT:
            raise StackOverflow(self.stack_used + self.scratch_size, self.statement_span)
        builder = ir.IRBuilder(self.scratch_block)
        builder.position_before(self.scratch_block.terminator)
        return opaque(builder.gep(self.scratch_base, [c64(offset)], source_etype=I8, name=name))

    def open_scratch(self) -> None:
        """The lookup of this program's scratch entry, at the end of the entry block (which
        build() then ends with the null check the verifier wants)."""
        self.scratch_index = self.mod.scratch_entry()
        self.stack_used += 8
        with self.allocas.goto_entry_block():
            self.allocas.position_at_start(self.allocas.block)
            key = opaque(self.allocas.alloca(ir.ArrayType(I8, 8), name="scratch_key"))
        key.align = 8
        self.allocas.position_at_end(self.allocas.block)
        self.allocas.store(ir.Constant(I32, self.scratch_index), key, align=8)
        fnty = ir.FunctionType(I64, [PTR, PTR])
        found = self.allocas.call(HelperCallee(
            self.allocas.inttoptr(c64(int(BpfFunc.map_lookup_elem)), PTR), fnty),
            [self.map_ptr(SCRATCH_MAP), key])
        self.scratch_lookup = found
        self.scratch_block = self.fn.append_basic_block("scratch")
        builder = ir.IRBuilder(self.scratch_block)
        self.scratch_base = builder.inttoptr(found, PTR)
        builder.branch(self.fn.blocks[1])

    def release_temporaries(self, mark: int) -> None:
        while len(self.temporaries) > mark:
            size, a = self.temporaries.pop()
            self.free.setdefault(size, []).append(a)

    @staticmethod
    def constant(value: int, bits: int = 64) -> ir.Constant:
        return c64(value) if bits == 64 else ir.Constant(ir.IntType(bits), value)

    upper_bound = staticmethod(upper_bound)

    def gep(self, base: ir.Value, offset: int) -> ir.Value:
        return base if offset == 0 else opaque(self.b.gep(base, [c64(offset)], source_etype=I8))

    @staticmethod
    def integer_type(size: int) -> ir.Type:
        """The IR integer of `size` bytes."""
        return ir.IntType(size * 8)

    def byte_at(self, base: ir.Value, index: ir.Value) -> ir.Value:
        """The address of byte `index` (a value, not a constant) of a buffer."""
        return opaque(self.b.gep(base, [index], source_etype=I8))

    def kernel_variable(self, btf_id: int) -> ir.Value:
        """The address of the kernel variable whose vmlinux BTF VAR is `btf_id` (a ksym): one
        ld_imm64 with src_reg BPF_PSEUDO_BTF_ID, which the verifier resolves at load time. LLVM's
        llvm.bpf.pseudo emits it; of a per-CPU variable it is what bpf_this_cpu_ptr takes."""
        module = self.b.module
        pseudo = module.globals.get("llvm.bpf.pseudo") or \
            ir.Function(module, ir.FunctionType(I64, [I64, I64]), "llvm.bpf.pseudo")
        return self.b.call(pseudo, [c64(BPF_PSEUDO_BTF_ID), c64(btf_id)])

    def helper(self, func: BpfFunc, *args: ir.Value, tolerated: int = 0) -> ir.Value:
        """Call a BPF helper: a call through `inttoptr (i64 ID to ptr)`, every helper returns i64.
        A helper that can fail is checked (lower_helpers), but for -`tolerated`, which the caller
        handles."""
        fnty = ir.FunctionType(I64, [a.type for a in args])
        result = self.b.call(HelperCallee(self.b.inttoptr(c64(int(func)), PTR), fnty), args)
        if func in CHECKED:
            self.check_helper(func, result, args, tolerated)
        return result

    def map_ptr(self, symbol: str) -> ir.Value:
        if symbol == EVENTS_MAP:
            self.mod.event_writes += 1
        return self.mod.maps[symbol]

    def store64(self, value: ir.Value, ptr: ir.Value, offset: int = 0) -> None:
        self.b.store(value, self.gep(ptr, offset), align=8)

    def load64(self, ptr: ir.Value, offset: int = 0) -> ir.Value:
        return self.b.load(self.gep(ptr, offset), typ=I64, align=8)

    def zero(self, ptr: ir.Value, size: int) -> None:
        for off in range(0, size, 8):
            self.store64(c64(0), ptr, off)

    def copy(self, dst: ir.Value, dst_size: int, src: ir.Value, src_size: int) -> None:
        """Copy a buffer into a slot: 8 bytes at a time (both are 8-aligned and padded), zeroing
        what src does not cover."""
        dst_size, src_size = (dst_size + 7) & ~7, (src_size + 7) & ~7
        for off in range(0, dst_size, 8):
            self.store64(self.load64(src, off) if off < src_size else c64(0), dst, off)

    def new_block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def branch_if(self, cond: ir.Value, then_name: str, done_name: str):
        then, done = self.new_block(then_name), self.new_block(done_name)
        self.b.cbranch(cond, then, done)
        return then, done

    def to_bool(self, v: ir.Value) -> ir.Value:
        return self.b.icmp_unsigned("!=", v, c64(0))

    def from_bool(self, flag: ir.Value) -> ir.Value:
        """An i1 as the language's integer: 0 or 1."""
        return self.b.zext(flag, I64)

    def terminated(self) -> bool:
        return self.b.block.is_terminated

    # Entry -----------------------------------------------------------------------------------

    def build(self) -> None:
        probe = self.program.group.probe
        if self.program.syscall_filter is not None:
            self.filter_syscall()
        if self.program.probe_from_cookie:
            self.probe_value = self.helper(BpfFunc.get_attach_cookie, self.ctx)
        if self.mod.filter_pid and self.program.group.provider.filtered_by_pid:
            self.filter_traced_process()
        if probe.predicate is not None:
            self.b.debug_metadata = self.location(probe.predicate.span)
            cond = self.to_bool(self.expr(probe.predicate))
            run, skip = self.branch_if(cond, "run", "skip")
            self.b.position_at_end(skip)
            self.b.ret(c64(0))
            self.b.position_at_end(run)
        self.block(probe.body)
        if not self.terminated():
            self.b.ret(c64(0))
        self.finish()

    def finish(self) -> None:
        """Close the entry block: its allocas, then on to the code."""
        self.allocas.position_at_end(self.allocas.block)
        if self.scratch_block is None:
            self.allocas.branch(self.fn.blocks[1])
            return
        missing = self.fn.append_basic_block("no_scratch")     # never, for an index in range
        ir.IRBuilder(missing).ret(c64(0))
        self.allocas.cbranch(self.allocas.icmp_unsigned("!=", self.scratch_lookup, c64(0)),
                             self.scratch_block, missing)

    def filter_traced_process(self) -> None:
        """-p/-c: return at once in any other process. The pid is read from the start map, which
        the session fills before attaching, so a cached object serves every pid."""
        traced = self.alloca(8, "traced")
        self.store64(c64(0), traced)
        self.with_array_element(START_MAP, START_TRACED, "traced_slot",
                                lambda slot: self.store64(self.load64(slot), traced))
        tgid = self.b.lshr(self.helper(BpfFunc.get_current_pid_tgid), c64(32))
        run, skip = self.branch_if(self.b.icmp_unsigned("==", tgid, self.load64(traced)),
                                   "traced", "other_process")
        self.b.position_at_end(skip)
        self.b.ret(c64(0))
        self.b.position_at_end(run)

    # Statements ------------------------------------------------------------------------------

    def block(self, stmts) -> None:
        for s in stmts:
            if self.terminated():
                # Code after return/break/continue is unreachable: give it a block of its own.
                self.b.position_at_end(self.new_block("dead"))
            self.statement(s)

    def location(self, span):
        return self.mod.debug.location(self.scope, span)

    def statement(self, s) -> None:
        self.statement_span = self.span = s.span
        self.b.debug_metadata = self.location(s.span)
        mark = len(self.temporaries)
        self.lower_statement(s)
        self.release_temporaries(mark)

    def lower_statement(self, s) -> None:
        if isinstance(s, ast.ExprStatement):
            self.expr(s.expr)
        elif isinstance(s, ast.Assign):
            self.assign(s)
        elif isinstance(s, ast.If):
            self.if_stmt(s)
        elif isinstance(s, ast.While):
            self.while_stmt(s)
        elif isinstance(s, ast.VarDecl):
            if s.value is not None:
                self.assign_variable(s.var, None, s.value)
            else:
                binding = self.checked.variables[s.var]
                self.zero(self.variable_slot(s.var), slot(binding.type))
        elif isinstance(s, ast.ForRange):
            self.for_range(s)
        elif isinstance(s, ast.ForMap):
            self.for_map(s)
        elif isinstance(s, ast.Unroll):
            for _ in range(self.checked_constant(s.count)):
                self.block(s.body)
        elif isinstance(s, ast.Jump):
            if s.kind == "return":
                self.b.ret(c64(0))
            else:
                cont, brk = self.loops[-1]
                self.b.branch(cont if s.kind == "continue" else brk)

    def checked_constant(self, e) -> int:
        if isinstance(e, ast.Integer):
            return e.value
        if isinstance(e, ast.Unary):
            return -self.checked_constant(e.operand)
        return param_int(self.param_text(e.index))

    def param_text(self, index: int) -> str:
        params = self.checked.params
        return params[index - 1] if 0 < index <= len(params) else ""

    def two_way(self, cond: ir.Value, name: str, lower_then, lower_else) -> None:
        """if/else: each side lowered by its callable, both joining after (unless they return)."""
        then, otherwise, done = (self.new_block(name + "_then"), self.new_block(name + "_else"),
                                 self.new_block(name + "_done"))
        self.b.cbranch(cond, then, otherwise)
        for block, lower in ((then, lower_then), (otherwise, lower_else)):
            self.b.position_at_end(block)
            lower()
            if not self.terminated():
                self.b.branch(done)
        self.b.position_at_end(done)

    def if_stmt(self, s: ast.If) -> None:
        self.two_way(self.to_bool(self.expr(s.cond)), "if", lambda: self.block(s.then),
                     lambda: self.block(s.otherwise))

    def while_stmt(self, s: ast.While) -> None:
        head, body, done = self.new_block("while"), self.new_block("loop"), self.new_block("done")
        self.b.branch(head)
        self.b.position_at_end(head)
        self.b.cbranch(self.to_bool(self.expr(s.cond)), body, done)
        self.b.position_at_end(body)
        self.loops.append((head, done))
        self.block(s.body)
        self.loops.pop()
        if not self.terminated():
            self.b.branch(head)
        self.b.position_at_end(done)

    def for_range(self, s: ast.ForRange) -> None:
        """A counted loop: the bounds are read once; the verifier bounds it like a while loop
        on a counter (bpf_loop would need the program's BTF func_info, not loaded here)."""
        signed = self.type_of(s.start).signed and self.type_of(s.end).signed
        counter = self.variable_slot(s.var)
        self.store64(self.expr(s.start), counter)
        end = self.alloca(8, "end", temporary=False)
        self.store64(self.expr(s.end), end)
        head, body, step, done = (self.new_block("for"), self.new_block("for_body"),
                                  self.new_block("for_step"), self.new_block("for_done"))
        self.b.branch(head)
        self.b.position_at_end(head)
        compare = self.b.icmp_signed if signed else self.b.icmp_unsigned
        self.b.cbranch(compare("<", self.load64(counter), self.load64(end)), body, done)
        self.b.position_at_end(body)
        self.loops.append((step, done))
        self.block(s.body)
        self.loops.pop()
        if not self.terminated():
            self.b.branch(step)
        self.b.position_at_end(step)
        self.store64(self.b.add(self.load64(counter), c64(1)), counter)
        self.b.branch(head)
        self.b.position_at_end(done)

    def variable_slot(self, var: ast.Variable) -> ir.Value:
        return self.binding_slot(self.checked.variables[var])

    def binding_slot(self, binding) -> ir.Value:
        if binding not in self.variables:
            self.variables[binding] = self.alloca(slot(binding.type), binding.name.lstrip("$"),
                                                  temporary=False)
        return self.variables[binding]

    def store_variable(self, var: ast.Variable, value: ir.Value) -> ir.Value:
        """Store an integer into a variable, converted to its declared type as C does."""
        t = self.checked.variables[var].type
        if isinstance(t, T.IntType) and t.boolean:        # let $b: bool = 5: true
            value = self.from_bool(self.to_bool(value))
        elif isinstance(t, T.IntType) and t.size < 8:
            value = self.narrow(value, KernelRead("int", t.size, t.signed))
        self.store64(value, self.variable_slot(var))
        return value

    def assign(self, s: ast.Assign) -> None:
        target = s.target
        if isinstance(target, ast.Map):
            spec = self.plan.maps[target.name]
            if spec.kind.is_aggregation:
                self.aggregate(spec, target, s.value)
                return
            if s.op is not None:
                self.map_update_in_place(spec, target, lambda old: self.arith(
                    s.op, old, self.expr(s.value), self.type_of(s.value).signed))
                return
            key = self.key(spec, target)
            value = self.as_slot(self.expr(s.value), self.type_of(s.value), spec.value)
            self.helper(BpfFunc.map_update_elem, self.map_ptr(spec.symbol), key, value, c64(BPF_ANY))
            return
        self.assign_variable(target, s.op, s.value)

    def assign_variable(self, var: ast.Variable, op: str | None, value_expr) -> None:
        var_type = self.checked.variables[var].type
        ptr = self.variable_slot(var)
        if op is not None:
            old = self.load64(ptr)
            self.store_variable(var, self.arith(op, old, self.expr(value_expr), var_type.signed))
            return
        value = self.expr(value_expr)
        if is_buffer(var_type):
            self.store_slot(ptr, 0, value, self.type_of(value_expr), var_type)
        else:
            self.store_variable(var, value)

    def as_slot(self, value: ir.Value, t: T.Type, want: T.Type) -> ir.Value:
        """A pointer to `value` laid out as a slot of type `want` (an int is spilled)."""
        buf = self.alloca(slot(want))
        self.store_slot(buf, 0, value, t, want)
        return buf

    def store_slot(self, buf: ir.Value, offset: int, value: ir.Value, t: T.Type,
                   want: T.Type) -> None:
        if isinstance(want, T.TupleType) and isinstance(t, T.TupleType) and t != want:
            # element by element: a record's fields by name, strings inside widened in place
            for name, w, at in zip(want.names or range(len(want.elements)), want.elements, want.offsets()):
                i = t.names.index(name) if want.names else name
                et, et_at = t.elements[i], t.offsets()[i]
                part = self.gep(value, et_at) if is_buffer(et) else self.load64(value, et_at)
                self.store_slot(buf, offset + at, part, et, w)
            return
        if is_buffer(want):
            self.copy(self.gep(buf, offset), slot(want), value, slot(t))
        else:
            self.store64(value, buf, offset)

    # Expressions -----------------------------------------------------------------------------

    def expr(self, e) -> ir.Value:
        outer, self.span = self.span, e.span
        value = getattr(self, "expr_" + type(e).__name__)(e)
        self.span = outer
        if e in self.checked.struct_copies:        # value is the struct's kernel address
            size = self.type_of(e).size
            buf = self.alloca(size, "struct")
            self.zero(buf, size)
            found = self.checked.kernel_fields.get(e)
            user = found is not None and found.read.user
            self.helper(BpfFunc.probe_read_user if user else BpfFunc.probe_read_kernel, buf,
                        c64(size), self.b.inttoptr(value, PTR))
            return buf
        return value

    def expr_Integer(self, e):
        return c64(e.value)

    def string_constant(self, data: bytes, size: int) -> ir.Value:
        buf = self.alloca(size, "str")
        padded = data.ljust((max(size, 1) + 7) & ~7, b"\0")
        for off in range(0, len(padded), 8):
            self.store64(c64(int.from_bytes(padded[off:off + 8], "little")), buf, off)
        return buf

    def expr_String(self, e):
        return self.string_constant(e.value, self.type_of(e).size)

    def expr_PositionalParam(self, e):
        t = self.type_of(e)
        text = self.param_text(e.index)
        if isinstance(t, T.StringType):
            return self.string_constant(text.encode("utf-8", "surrogateescape"), t.size)
        return c64(param_int(text) if text else 0)

    def expr_ParamCount(self, e):
        return c64(len(self.checked.params))

    def expr_Builtin(self, e):
        if e in self.checked.constants:          # a kernel enumerator
            return c64(self.checked.constants[e])
        return builtins.identifier(e.name).lower(self, e)

    def expr_Call(self, e):
        return builtins.function(e.name).lower(self, e)

    def expr_Variable(self, e):
        t = self.type_of(e)
        ptr = self.variable_slot(e)
        return ptr if is_buffer(t) else self.load64(ptr)

    def expr_TupleIndex(self, e):
        base_t = self.type_of(e.base)
        base = self.expr(e.base)
        off = base_t.offsets()[e.index]
        return self.gep(base, off) if is_buffer(self.type_of(e)) else self.load64(base, off)

    def expr_Tuple(self, e):
        t = self.type_of(e)
        buf = self.alloca(t.size, "tuple")
        for el, want, off in zip(e.elements, t.elements, t.offsets()):
            self.store_slot(buf, off, self.expr(el), self.type_of(el), want)
        return buf

    def arith(self, op: str, a: ir.Value, c: ir.Value, signed: bool) -> ir.Value:
        b = self.b
        if op == "+":
            return b.add(a, c)
        if op == "-":
            return b.sub(a, c)
        if op == "*":
            return b.mul(a, c)
        if op in ("/", "%"):
            return self.divide(op, a, c, signed)
        if op == "&":
            return b.and_(a, c)
        if op == "|":
            return b.or_(a, c)
        if op == "^":
            return b.xor(a, c)
        if op == "<<":
            return b.shl(a, b.and_(c, c64(63)))
        if op == ">>":
            amount = b.and_(c, c64(63))
            return b.ashr(a, amount) if signed else b.lshr(a, amount)
        raise AssertionError(op)

    def divide(self, op: str, a: ir.Value, c: ir.Value, signed: bool) -> ir.Value:
        """C division: by zero yields 0, as the BPF instruction does. Signed division is done on
        magnitudes (BPF has sdiv only from cpu v4, and LLVM aborts on it before), truncating
        toward zero; a remainder takes the dividend's sign."""
        b = self.b
        is_zero = b.icmp_unsigned("==", c, c64(0))
        safe = b.select(is_zero, c64(1), c)
        if not signed:
            q = b.udiv(a, safe) if op == "/" else b.urem(a, safe)
            return b.select(is_zero, c64(0), q)
        a_negative = b.icmp_signed("<", a, c64(0))
        c_negative = b.icmp_signed("<", safe, c64(0))
        magnitude_a = b.select(a_negative, b.sub(c64(0), a), a)
        magnitude_c = b.select(c_negative, b.sub(c64(0), safe), safe)
        if op == "/":
            q = b.udiv(magnitude_a, magnitude_c)
            result = b.select(b.xor(a_negative, c_negative), b.sub(c64(0), q), q)
        else:
            r = b.urem(magnitude_a, magnitude_c)
            result = b.select(a_negative, b.sub(c64(0), r), r)
        return b.select(is_zero, c64(0), result)

    def expr_Binary(self, e):
        op = e.op
        if op in ("&&", "||"):
            return self.short_circuit(e)
        lt, rt = self.type_of(e.left), self.type_of(e.right)
        number = self.checked.syscall_comparisons.get(e)
        if number is not None:
            # syscall_name(nr) == "read": nr's low 32 bits, as syscall_name() names them, against 0
            named = self.expr(e.left if isinstance(lt, T.FormattedType) else e.right)
            nr = self.b.trunc(self.load64(named), I32)
            return self.from_bool(self.b.icmp_unsigned(op, nr, ir.Constant(I32, number)))
        left, right = self.expr(e.left), self.expr(e.right)
        scale = self.checked.pointer_scale.get(e)
        if scale is not None:
            if isinstance(rt, T.PointerType):        # pointer - pointer: elements between
                return self.arith("/", self.b.sub(left, right), c64(scale), False)
            return self.arith(op, left, self.b.mul(right, c64(scale)), False)
        if isinstance(lt, T.StringType):
            eq = self.strings_equal(left, lt.size, right, rt.size)
            return self.from_bool(eq if op == "==" else self.b.not_(eq))
        if isinstance(lt, (T.ArrayType, T.StructType, T.TupleType)):
            eq = self.buffers_equal(left, right, slot(lt))
            return self.from_bool(eq if op == "==" else self.b.not_(eq))
        if op in ("==", "!=", "<", ">", "<=", ">="):
            if lt.signed and rt.signed:
                cmp = self.b.icmp_signed(op, left, right)
            else:
                cmp = self.b.icmp_unsigned(op, left, right)
            return self.from_bool(cmp)
        return self.arith(op, left, right, self.type_of(e).signed)

    def short_circuit(self, e) -> ir.Value:
        result = self.alloca(8, "logic")
        left = self.to_bool(self.expr(e.left))
        self.store64(self.from_bool(left), result)
        rhs, done = self.new_block("rhs"), self.new_block("logic_done")
        if e.op == "&&":
            self.b.cbranch(left, rhs, done)
        else:
            self.b.cbranch(left, done, rhs)
        self.b.position_at_end(rhs)
        self.store64(self.from_bool(self.to_bool(self.expr(e.right))), result)
        self.b.branch(done)
        self.b.position_at_end(done)
        return self.load64(result)

    def buffers_equal(self, a: ir.Value, c: ir.Value, size: int) -> ir.Value:
        """Whether two zero-padded buffers of `size` bytes hold the same bytes, 8 at a time."""
        diff = c64(0)
        for off in range(0, size, 8):
            diff = self.b.or_(diff, self.b.xor(self.load64(a, off), self.load64(c, off)))
        return self.b.icmp_unsigned("==", diff, c64(0))

    def strings_equal(self, a: ir.Value, a_size: int, c: ir.Value, c_size: int,
                      limit: int | None = None) -> ir.Value:
        """Bytewise equality up to the first NUL, or the first `limit` bytes (strncmp): a chain
        of blocks, one per byte."""
        b = self.b
        result = self.alloca(8, "streq")
        self.store64(c64(0), result)
        done = self.new_block("streq_done")
        n = min(a_size, c_size) if limit is None else min(a_size, c_size, limit)
        for i in range(n):
            x = b.load(self.gep(a, i), typ=I8)
            y = b.load(self.gep(c, i), typ=I8)
            same = b.icmp_unsigned("==", x, y)
            at_end = b.icmp_unsigned("==", x, ir.Constant(I8, 0))
            equal_here, next_byte = self.new_block("streq_end"), self.new_block("streq_next")
            check_end = self.new_block("streq_same")
            b.cbranch(same, check_end, done)
            b.position_at_end(check_end)
            b.cbranch(at_end, equal_here, next_byte)
            b.position_at_end(equal_here)
            self.store64(c64(1), result)
            b.branch(done)
            b.position_at_end(next_byte)
        # Every compared byte matched without a NUL: equal when the longer string ends here.
        if a_size == c_size or n == limit:
            self.store64(c64(1), result)
        else:
            longer = a if a_size > c_size else c
            tail = b.load(self.gep(longer, n), typ=I8)
            self.store64(self.from_bool(b.icmp_unsigned("==", tail, ir.Constant(I8, 0))), result)
        b.branch(done)
        b.position_at_end(done)
        return self.b.icmp_unsigned("!=", self.load64(result), c64(0))

    def expr_Unary(self, e):
        v = self.expr(e.operand)
        if e.op == "!":
            return self.from_bool(self.b.icmp_unsigned("==", v, c64(0)))
        if e.op == "~":
            return self.b.xor(v, c64(-1))
        if e.op == "-":
            return self.b.sub(c64(0), v)
        return v

    def expr_IncDec(self, e):
        delta = c64(1 if e.op == "++" else -1)
        target = e.target
        if isinstance(target, ast.Map):
            new = self.map_update_in_place(self.plan.maps[target.name], target,
                                           lambda old: self.b.add(old, delta))
        else:
            old = self.load64(self.variable_slot(target))
            new = self.store_variable(target, self.b.add(old, delta))
            return new if e.prefix else old
        return new if e.prefix else self.b.sub(new, delta)

    def expr_Ternary(self, e):
        t = self.type_of(e)
        if isinstance(t, T.VoidType):
            self.two_way(self.to_bool(self.expr(e.cond)), "ternary",
                         lambda: self.expr(e.then), lambda: self.expr(e.otherwise))
            return c64(0)
        result = self.alloca(slot(t), "ternary")

        def lower(branch):
            return lambda: self.store_slot(result, 0, self.expr(branch), self.type_of(branch), t)
        self.two_way(self.to_bool(self.expr(e.cond)), "ternary", lower(e.then), lower(e.otherwise))
        return result if is_buffer(t) else self.load64(result)

@record
class LoweredModule:
    ir_text: str
    statement_spans: tuple[tuple[int, int, int, int], ...]   # (line, col, end line, end col)
    helper_sites: tuple[HelperErrorSite, ...]                 # by index in HELPER_ERRORS_MAP
    runtime_warnings: tuple[str, ...]                         # by RUNTIME_WARNING record index


# The ring buffer of a script whose only records are exit()'s and helper-error warnings: room for
# ~4,000 warnings between two reads.
WARNINGS_RINGBUF_SIZE = 64 << 10


def event_ring_size(largest_record: int, cpus: int) -> int:
    """The event ring buffer's size for a script whose largest record is largest_record bytes:
    EVENT_RING_RECORDS_PER_CPU of them (with the kernel's 8-byte header, 8-byte aligned) per CPU,
    rounded up to a power of two, from a page to EVENT_RING_MAX_SIZE."""
    want = cpus * EVENT_RING_RECORDS_PER_CPU * ((largest_record + BPF_RINGBUF_HDR_SZ + 7) & ~7)
    return min(max(mmap.PAGESIZE, 1 << (want - 1).bit_length()), EVENT_RING_MAX_SIZE)


def generate_ir(checked: CheckedScript, plan: ResourcePlan, diags: Diagnostics,
                ringbuf_size: int | None, cpus: int = 1, filter_pid: bool = False,
                warning_level: int = WARN_BY_DEFAULT, spill_room: int = 0) -> LoweredModule | None:
    """ringbuf_size: the event ring buffer's, or None to size it to the script (event_ring_size,
    over cpus CPUs). filter_pid: every probe that runs in processes runs only in the one -p/-c names.
    warning_level: which helper failures are also warned about as they happen (lower_helpers).
    spill_room: stack bytes kept free for LLVM's spills (ModuleBuilder)."""
    mod = ModuleBuilder(checked, plan, diags, filter_pid, warning_level, spill_room)
    for program in plan.programs:
        builder = FunctionBuilder(mod, program, diags)
        try:
            builder.build()
        except StackOverflow as e:
            diags.error(f"The probe's values take more than the BPF stack's {STACK_LIMIT} bytes "
                        f"and the {SCRATCH_LIMIT} bytes of scratch space after it ({e.used} bytes "
                        f"by here): use fewer or shorter strings and tuples", e.span)
            continue
        for callback in builder.callbacks:
            # A callback's frame sits on its caller's: the verifier adds them up, each rounded to 32.
            used = frame_depth(builder, callback)
            if used > STACK_LIMIT:
                diags.error(f"The probe and its for-loop body use more than the BPF stack's "
                            f"{STACK_LIMIT} bytes ({used} bytes, as the verifier counts them): use "
                            "fewer or shorter strings and tuples", callback.span)
    if diags.has_errors:
        return None
    mod.finish_scratch()
    # The ring buffer's pages are allocated at map creation and mapped by the tracer (they count in
    # its RSS). With no printf, print, time...: exit()'s 8 bytes need its one page (exit() also
    # sets EXIT_MAP); helper-error warnings WARNINGS_RINGBUF_SIZE (past it they are lost, and
    # counted as lost events, but still counted at their site).
    if mod.event_writes > mod.exit_writes + mod.warning_writes:
        size = event_ring_size(mod.largest_record, cpus) if ringbuf_size is None else ringbuf_size
        mod.set_size(EVENTS_MAP, size)
    elif mod.warning_writes:
        mod.set_size(EVENTS_MAP, min(ringbuf_size or WARNINGS_RINGBUF_SIZE, WARNINGS_RINGBUF_SIZE))
    mod.set_size(HELPER_ERRORS_MAP, max(1, len(mod.helper_sites.sites)))
    return LoweredModule(str(mod.module), tuple(sorted(mod.debug.spans)), tuple(mod.helper_sites.sites),
                         tuple(mod.runtime_warnings.texts))
