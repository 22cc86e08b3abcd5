"""`min(v)`: {i64 value, u64 set} per CPU; the least value over the CPUs that set one.

    MIN.entries(spec, [(1,)], q(0, 0) + q(-7, 1), 2, False, ...)    # [((1,), -7)]: CPU 0 never set

An entry no CPU has set (zero()ed, or an array's untouched element) is left out.
"""

from __future__ import annotations

import builtins

from pybpf import types as T
from pybpf.mapkinds.base import Aggregation, MapKind, per_cpu_struct


class Min(Aggregation):
    kind = MapKind.MIN
    read_type = T.IntType(8, True)
    beats = "<"               # the signed comparison a new value wins by
    pick = staticmethod(builtins.min)

    def value_size(self, spec) -> int:
        return 16

    def lower_update(self, fb, ptr, value) -> None:
        b = fb.b
        old = fb.load64(ptr)
        unset = b.icmp_unsigned("==", fb.load64(ptr, 8), fb.constant(0))
        wins = b.or_(unset, b.icmp_signed(self.beats, value, old))
        fb.store64(b.select(wins, value, old), ptr)
        fb.store64(fb.constant(1), ptr, 8)

    def lower_initial(self, fb, buf, value) -> None:
        fb.store64(value, buf)
        fb.store64(fb.constant(1), buf, 8)

    def lower_merge(self, fb, total, ptr) -> None:
        """A CPU that set a value wins when the total has none yet or its value beats it."""
        b = fb.b
        value, cpu_set = fb.load64(ptr), fb.load64(ptr, 8)
        old, total_set = fb.load64(total), fb.load64(total, 8)
        zero = fb.constant(0)
        wins = b.and_(b.icmp_unsigned("!=", cpu_set, zero),
                      b.or_(b.icmp_unsigned("==", total_set, zero),
                            b.icmp_signed(self.beats, value, old)))
        fb.store64(b.select(wins, value, old), total)
        fb.store64(b.or_(total_set, cpu_set), total, 8)

    def entries(self, spec, keys, values_raw, ncpu, hide_zero, typed_values):
        pick, entries = self.pick, []
        for key, cpus in zip(keys, per_cpu_struct("qQ", ncpu).iter_unpack(values_raw)):
            # A CPU that never set a value has no minimum or maximum.
            found = [v for v, is_set in zip(cpus[0::2], cpus[1::2]) if is_set]
            if found:
                entries.append((key, pick(found)))
        return entries


MIN = Min()
