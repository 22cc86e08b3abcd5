"""Lowering of map operations: keys, the one-lookup update into which each map kind's own update
code (pybpf.mapkinds) is folded, and the per-CPU counters the runtime reads (lost events; helper
failures, full maps among them, are counted by lower_helpers).

Mixed into pybpf.backend.codegen.FunctionBuilder, whose infrastructure (alloca, helper, store64,
branch_if, ...) these methods use.
"""

from __future__ import annotations

import errno

from llvmlite import ir

from pybpf import ast
from pybpf import types as T
from pybpf.backend.irutil import I32, I64, PTR, c64, is_buffer, slot
from pybpf.checked import spread_key
from pybpf.mapkinds import kind_for
from pybpf.program import EVENTS_MAP, LOST_MAP, EventKind, MapSpec
from pybpf.uapi.bpf import BPF_NOEXIST, BpfFunc

class MapLowering:
    def key(self, spec: MapSpec, m: ast.Map, bucket: ir.Value | None = None) -> ir.Value:
        if len(spec.key) == 1 and bucket is None and not spec.is_array \
                and is_buffer(spec.key[0]) and self.type_of(m.keys[0]) == spec.key[0] \
                and spec.key_size == T.slot_size(spec.key[0]):
            # @[comm], @[str(...)]: the value's own buffer is the key, not a copy of it (a
            # temporary lives until the statement ends, past the helper calls that read it)
            return self.expr(m.keys[0])
        buf = self.alloca(spec.key_size, "key")
        if spec.is_array:
            index = bucket if bucket is not None else c64(0)
            self.b.store(self.b.trunc(index, I32), buf, align=8)
            return buf
        if not spec.key:
            self.store64(c64(0), buf)
        else:
            for (value, t), want, off in zip(self.key_parts(m), spec.key, T.slot_offsets(spec.key)):
                self.store_slot(buf, off, value, t, want)
        if bucket is not None:
            self.store64(bucket, buf, spec.user_key_size)
        return buf

    def key_parts(self, m: ast.Map) -> list[tuple[ir.Value, T.Type]]:
        """Each key's value and type; a tuple that is the map's keys (spread_key) gives its
        elements."""
        if len(m.keys) == 1 and spread_key(self.type_of(m.keys[0])):
            t = self.type_of(m.keys[0])
            tup = self.expr(m.keys[0])
            return [(self.gep(tup, off) if is_buffer(e) else self.load64(tup, off), e)
                    for e, off in zip(t.elements, t.offsets())]
        return [(self.expr(k), self.type_of(k)) for k in m.keys]

    def lookup(self, spec_symbol: str, key: ir.Value) -> ir.Value:
        r = self.helper(BpfFunc.map_lookup_elem, self.map_ptr(spec_symbol), key)
        return self.b.inttoptr(r, PTR)

    def update_or_insert(self, symbol: str, key: ir.Value, value_size: int,
                         on_found, on_missing) -> None:
        """The one-lookup update: modify the value in place when present, else insert one
        built by on_missing(buffer). Arrays have every element: a miss is an index out of
        range, and there is nothing to insert."""
        found_ptr = self.lookup(symbol, key)
        is_null = self.b.icmp_unsigned("==", self.b.ptrtoint(found_ptr, I64), c64(0))
        found, missing, done = (self.new_block("found"), self.new_block("missing"),
                                self.new_block("updated"))
        self.b.cbranch(is_null, done if on_missing is None else missing, found)
        self.b.position_at_end(found)
        on_found(found_ptr)
        self.b.branch(done)
        self.b.position_at_end(missing)
        if on_missing is None:
            self.b.unreachable()
            self.b.position_at_end(done)
            return
        init = self.alloca(value_size, "init")
        on_missing(init)
        inserted = self.helper(BpfFunc.map_update_elem, self.map_ptr(symbol), key, init,
                               c64(BPF_NOEXIST), tolerated=errno.EEXIST)
        # Another CPU inserted the key since the lookup: apply this update to its entry (in a
        # per-CPU map, this CPU's zeroed slot of it) rather than lose it.
        raced, no_race = self.branch_if(self.b.icmp_signed("==", inserted, c64(-errno.EEXIST)),
                                        "insert_raced", "inserted")
        self.b.position_at_end(raced)
        again = self.lookup(symbol, key)
        present, gone = self.branch_if(
            self.b.icmp_unsigned("!=", self.b.ptrtoint(again, I64), c64(0)), "found_after_race",
            "gone_after_race")
        self.b.position_at_end(present)
        on_found(again)
        for block in (present, gone, no_race):
            if block is not present:
                self.b.position_at_end(block)
            self.b.branch(done)
        self.b.position_at_end(done)

    def count_in_kernel(self, failed: ir.Value, counters: str, index: int, name: str,
                        key: ir.Value | None = None) -> None:
        """When `failed`, add one to element `index` of the per-CPU counter array `counters`
        (`key`: a dead buffer of 8 bytes or more to hold the index, saving stack)."""
        bump, done = self.branch_if(failed, name, name + "_done")
        self.b.position_at_end(bump)
        self.with_array_element(counters, index, name + "_count",
                                lambda counter: self.store64(self.b.add(self.load64(counter), c64(1)),
                                                             counter), key)
        self.b.branch(done)
        self.b.position_at_end(done)

    def with_array_element(self, symbol: str, index: int | ir.Value, name: str, use,
                           key: ir.Value | None = None) -> None:
        """use(pointer) on element `index` (a constant or an i64) of the array map `symbol`. The
        lookup cannot miss for an index in range, but the verifier wants the null check all the
        same. `key`: a buffer free for the index (else one is allocated)."""
        key = key if key is not None else self.alloca(8, name + "_key")
        self.b.store(ir.Constant(I32, index) if isinstance(index, int) else self.b.trunc(index, I32),
                     key, align=8)
        element = self.lookup(symbol, key)
        present, done = self.branch_if(self.is_present(element), name, name + "_done")
        self.b.position_at_end(present)
        use(element)
        self.b.branch(done)
        self.b.position_at_end(done)

    def is_present(self, pointer: ir.Value) -> ir.Value:
        """A map lookup found something."""
        return self.b.icmp_unsigned("!=", self.b.ptrtoint(pointer, I64), c64(0))

    def map_update_in_place(self, spec: MapSpec, m: ast.Map, compute) -> ir.Value:
        """@m op= v and @m++ on value maps: returns the new value."""
        key = self.key(spec, m)
        result = self.alloca(8, "result")

        def found(ptr):
            new = compute(self.load64(ptr))
            self.store64(new, ptr)
            self.store64(new, result)

        def missing(buf):
            new = compute(c64(0))
            self.store64(new, buf)
            self.store64(new, result)

        self.update_or_insert(spec.symbol, key, spec.value_size, found, missing)
        return self.load64(result)

    def aggregate(self, spec: MapSpec, m: ast.Map, call: ast.Call) -> None:
        """@m[k] = count() and the other aggregations: the map's kind (pybpf.mapkinds) lowers the
        bucket and the update, here folded into update_or_insert (an array has nothing to insert)."""
        kind = kind_for(spec.kind)
        value = kind.lower_operand(self, spec, self.expr(call.args[0]) if call.args else None)
        key = self.key(spec, m, kind.lower_bucket(self, spec, value))
        self.update_or_insert(spec.symbol, key, spec.value_size,
                              lambda found: kind.lower_update(self, found, value),
                              None if spec.is_array else lambda init: kind.lower_initial(self, init, value))

    def note_event_record(self, size: int) -> None:
        """A record of size bytes (our header included) is written to the ring buffer: the default
        ring is sized by the largest (codegen.event_ring_size)."""
        self.mod.largest_record = max(self.mod.largest_record, size)

    def emit_event(self, kind: EventKind, index: int | ir.Value, args=(),
                   buf: ir.Value | None = None) -> None:
        """args: (value, type) pairs, laid one per slot after the 8-byte header, in `buf` if
        given (large enough), else in a buffer of its own. `index`: a constant or an i64."""
        if kind == EventKind.EXIT:
            self.mod.exit_writes += 1
        elif kind in (EventKind.HELPER_ERROR, EventKind.RUNTIME_WARNING):
            self.mod.warning_writes += 1
        types = [t for _, t in args]
        size = 8 + sum(slot(t) for t in types)
        self.note_event_record(size)
        buf = buf if buf is not None else self.alloca(size, "event")
        header = c64(int(kind) | (index << 32)) if isinstance(index, int) else \
            self.b.or_(c64(int(kind)), self.b.shl(index, c64(32)))
        self.store64(header, buf)
        for (value, t), off in zip(args, T.slot_offsets(types)):
            self.store_slot(buf, 8 + off, value, t, t)
        r = self.helper(BpfFunc.ringbuf_output, self.map_ptr(EVENTS_MAP), buf, c64(size), c64(0))
        # the record is written (or refused): its buffer holds the counter's index
        self.count_in_kernel(self.b.icmp_signed("<", r, c64(0)), LOST_MAP, 0, "lost", buf)

    def expr_Map(self, e):
        spec = self.plan.maps[e.name]
        key = self.key(spec, e)
        found = self.lookup(spec.symbol, key)
        result = self.alloca(spec.value_size, "value")
        self.zero(result, spec.value_size)
        present, done = self.branch_if(
            self.is_present(found), "map_hit",
            "map_done")
        self.b.position_at_end(present)
        self.copy(result, spec.value_size, found, spec.value_size)
        self.b.branch(done)
        self.b.position_at_end(done)
        return result if is_buffer(spec.value) else self.load64(result)
