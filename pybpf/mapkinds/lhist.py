"""`lhist(v, min, max, step)`: hist with linear buckets.

    spec.lhist = LhistParams(0, 100, 10)
    LHIST.layout(spec).label(0), LHIST.layout(spec).label(3), LHIST.layout(spec).label(11)
    # '(..., 0)', '[20, 30)', '[100, ...)'

Bucket index: 0 below min, 1..B inside, B+1 at or above max, where B = (max - min) / step; a scalar
lhist is a PERCPU_ARRAY of B + 2 elements. Bounds print with a K or M suffix only when the step is
a multiple of 1024.
"""

from __future__ import annotations

from collections.abc import Callable

from pybpf.mapkinds.base import MapKind
from pybpf.mapkinds.hist import BucketLayout, Hist
from pybpf.records import NamedTuple


class LhistParams(NamedTuple):
    # a NamedTuple, not a dataclass: a cache hit imports this module, and dataclasses costs ~5 ms
    min: int
    max: int
    step: int

    @property
    def buckets(self) -> int:
        """Number of [lo, hi) buckets between min and max (the two open-ended ones come on top)."""
        return (self.max - self.min) // self.step


def _number(step: int) -> Callable[[int], str]:
    # Bounds print with a K or M suffix only when the step is a multiple of 1024, as in current
    # bpftrace; 0.17 abbreviated any multiple of 1024, so lhist(x, 1000, 1100, 8) showed [1K, 1032).
    if step % 1024:
        return str

    def number(value: int) -> str:
        if value and value % (1 << 20) == 0:
            return f"{value >> 20}M"
        if value and value % 1024 == 0:
            return f"{value >> 10}K"
        return str(value)
    return number


class Lhist(Hist):
    kind = MapKind.LHIST

    def layout(self, spec) -> BucketLayout:
        params = spec.lhist
        last = params.buckets + 1

        def bounds(index: int) -> tuple[int | None, int | None]:
            if index == 0:
                return None, params.min
            if index == last:
                return params.max, None
            return params.min + (index - 1) * params.step, params.min + index * params.step

        return BucketLayout(bounds, _number(params.step))

    def array_entries(self, spec) -> int:
        return spec.lhist.buckets + 2

    def lower_bucket(self, fb, spec, value):
        """A check that the value's known bound rules out is left out (lhist(v & 0xff, 0, 256, 16))."""
        p, b, c = spec.lhist, fb.b, fb.constant
        most = fb.upper_bound(value)
        bucket = b.add(b.udiv(b.sub(value, c(p.min)), c(p.step)), c(1))
        if most >= 1 << 63 or most >= p.max:
            bucket = b.select(b.icmp_signed(">=", value, c(p.max)), c(p.buckets + 1), bucket)
        if most >= 1 << 63 or p.min > 0:
            bucket = b.select(b.icmp_signed("<", value, c(p.min)), c(0), bucket)
        return bucket


LHIST = Lhist()
