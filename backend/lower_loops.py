"""Lowering of `for ($kv : @m) { ... }` and `len(@m)`: bpf_for_each_map_elem with a callback.

    for ($kv : @m) { $n += $kv.1; }     # probe_0 calls for_each_map_elem(@m, for_map_1, &ctx, 0)

The body becomes a static function of the program's own section, after its main function: the
helper calls it once per element with (map, key, value, ctx) and stops when it returns 1 (`break`;
`continue` returns 0). `ctx` points at a buffer on the caller's stack holding the addresses of the
variables the body shares with the code around the loop (the type checker lists them in
loop_captures), so the body reads and writes them in place; a program shared by syscall
tracepoints also passes its `probe` value. $kv is (key, value) on the callback's own stack: the key
copied from the map, the value too, or, for a per-CPU aggregation, the CPUs' values merged by the
map's kind (bpf_map_lookup_percpu_elem for each possible CPU), as user space prints it.

The object then needs its functions' BTF and func_info at load: backend.objspec and
backend.progbtf write them, runtime.loader passes them. len(@m) calls the helper with a callback
that only returns 0: the helper's result is the number of elements it visited.
"""

from __future__ import annotations

from pybpf import ast
from pybpf.backend.irutil import PTR, c64, ir, opaque, slot
from pybpf.mapkinds import kind_for
from pybpf.uapi.bpf import BpfFunc

CALLBACK_PARAMS = 4        # map, key, value, ctx
FRAME_ALIGN = 32           # the verifier rounds each frame's stack depth up to this
CONTINUE, BREAK = 0, 1     # what a callback returns to bpf_for_each_map_elem


def frame_depth(caller, callback) -> int:
    """The stack the verifier counts for `caller` with `callback` and the deepest chain of callbacks
    it calls in turn."""
    return _frame(caller) + _deepest(callback)


def _frame(builder) -> int:
    return -(-max(builder.stack_used, 1) // FRAME_ALIGN) * FRAME_ALIGN


def _deepest(builder) -> int:
    return _frame(builder) + max((_deepest(c) for c in builder.callbacks), default=0)


class LoopLowering:
    """FunctionBuilder methods for map loops: `self` is the function that calls the helper."""

    def new_callback(self, stem: str, span):
        """A static, never inlined function of this program's section, for the code at span."""
        self.mod.callback_count += 1
        callback = type(self)(self.mod, self.program, self.diags,
                              f"{stem}_{self.mod.callback_count}", CALLBACK_PARAMS, span)
        callback.fn.linkage = "internal"
        callback.fn.attributes.add("noinline")
        callback.ctx = None             # no probe context in a callback (the checker refuses reads)
        self.callbacks.append(callback)
        return callback

    def for_map(self, s: ast.ForMap) -> None:
        spec = self.plan.maps[s.map.name]
        captured = self.checked.loop_captures[s]
        carried = len(captured) + (self.probe_value is not None)
        ctx = self.alloca(8 * carried, "loop_ctx") if carried else ir.Constant(PTR, None)
        for i, binding in enumerate(captured):
            self.b.store(self.binding_slot(binding), self.gep(ctx, 8 * i), align=8)
        if self.probe_value is not None:
            self.store64(self.probe_value, ctx, 8 * len(captured))
        body = self.new_callback("for_map", s.span)
        body.loop_body(s, spec, captured, self.probe_value is not None)
        self.helper(BpfFunc.for_each_map_elem, self.map_ptr(spec.symbol), body.fn, ctx, c64(0))

    def loop_body(self, s: ast.ForMap, spec, captured, carries_probe: bool) -> None:
        """This callback's code: the shared variables' addresses from ctx, $kv, then the body."""
        _, key_ptr, value_ptr, ctx = self.fn.args
        for i, binding in enumerate(captured):
            self.variables[binding] = opaque(self.b.load(self.gep(ctx, 8 * i), typ=PTR, align=8))
        if carries_probe:
            self.probe_value = self.load64(ctx, 8 * len(captured))
        kv = self.variable_slot(s.var)
        key_size = spec.user_key_size
        self.copy(kv, key_size, key_ptr, key_size)
        if spec.percpu:
            self.store64(self.percpu_total(spec, kv, self.checked.constants[s]), kv, key_size)
        else:
            size = slot(spec.value)
            self.copy(self.gep(kv, key_size), size, value_ptr, size)
        next_element, stop = self.new_block("next_element"), self.new_block("stop")
        self.loops.append((next_element, stop))
        self.block(s.body)
        self.loops.pop()
        if not self.terminated():
            self.b.branch(next_element)
        for block, result in ((next_element, CONTINUE), (stop, BREAK)):
            self.b.position_at_end(block)
            self.b.ret(c64(result))
        self.finish()

    def percpu_total(self, spec, key, cpus: int) -> ir.Value:
        """The value of `key` in per-CPU map `spec` as the CPUs' values merged by its kind: a loop
        over the possible CPUs with bpf_map_lookup_percpu_elem."""
        kind = kind_for(spec.kind)
        total = self.alloca(spec.value_size, "total")
        self.zero(total, spec.value_size)
        cpu = self.alloca(8, "cpu")
        self.store64(c64(0), cpu)
        head, lookup, merge, step, done = (self.new_block(n) for n in (
            "cpus", "cpu_lookup", "cpu_merge", "cpu_next", "cpus_done"))
        self.b.branch(head)
        self.b.position_at_end(head)
        self.b.cbranch(self.b.icmp_unsigned("<", self.load64(cpu), c64(cpus)), lookup, done)
        self.b.position_at_end(lookup)
        value = self.helper(BpfFunc.map_lookup_percpu_elem, self.map_ptr(spec.symbol), key,
                            self.load64(cpu))
        self.b.cbranch(self.b.icmp_unsigned("!=", value, c64(0)), merge, step)
        self.b.position_at_end(merge)
        kind.lower_merge(self, total, self.b.inttoptr(value, PTR))
        self.b.branch(step)
        self.b.position_at_end(step)
        self.store64(self.b.add(self.load64(cpu), c64(1)), cpu)
        self.b.branch(head)
        self.b.position_at_end(done)
        return kind.lower_read(self, total)

    def map_length(self, spec) -> ir.Value:
        """len(@m): the elements bpf_for_each_map_elem visits with a callback that goes on."""
        if self.length_callback is None:
            callback = self.new_callback("map_len", self.statement_span)
            callback.b.ret(c64(CONTINUE))
            callback.finish()
            self.length_callback = callback.fn
        return self.helper(BpfFunc.for_each_map_elem, self.map_ptr(spec.symbol),
                           self.length_callback, ir.Constant(PTR, None), c64(0))
