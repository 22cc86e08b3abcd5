"""`count()`: an i64 per CPU, summed when read.

    COUNT.value_size(spec)                                     # 8
    COUNT.entries(spec, [(7,)], q(2) + q(3), 2, False, ...)    # [((7,), 5)]

A scalar count lives in a one-element PERCPU_ARRAY: a zero there means never counted, and is left
out unless the map was zero()ed.
"""

from __future__ import annotations

from pybpf import types as T
from pybpf.mapkinds.base import Aggregation, MapKind, add64, per_cpu_struct


class Count(Aggregation):
    kind = MapKind.COUNT
    read_type = T.IntType(8, False)

    def increment(self, fb, value):
        """What one update adds."""
        return fb.constant(1)

    def lower_update(self, fb, ptr, value) -> None:
        add64(fb, ptr, self.increment(fb, value))

    def lower_initial(self, fb, buf, value) -> None:
        fb.store64(self.increment(fb, value), buf)

    def lower_merge(self, fb, total, ptr) -> None:
        add64(fb, total, fb.load64(ptr))

    def entries(self, spec, keys, values_raw, ncpu, hide_zero, typed_values):
        totals = map(sum, per_cpu_struct("q", ncpu).iter_unpack(values_raw))
        if not hide_zero:
            return list(zip(keys, totals))
        return [(key, total) for key, total in zip(keys, totals) if total]


COUNT = Count()
