"""Map kinds: one module per aggregation, each an object that holds its value layout, its update
lowering, its decoding, and its text, JSON and metrics forms.

    from pybpf.mapkinds import MapKind, kind_for
    kind = kind_for(MapKind.HIST)
    kind.has_buckets, kind.value_size(spec)      # True, 8: a u64 count per (key, bucket)

`MapKind` is what the compiled program records (pybpf.program.MapSpec.kind); both sides ask
kind_for(spec.kind). The questions a kind answers are pybpf.mapkinds.base.Kind's. A new kind is
one module here, a MapKind member, a line in _KINDS, and its tests (tests/pybpf/test_mapkinds.py,
tests/backend/test_mapkind_lowering.py); docs/pipeline.md, "Map kinds", has the whole list.
"""

from __future__ import annotations

from pybpf.mapkinds.avg import AVG, Stats
from pybpf.mapkinds.base import Kind, MapKind
from pybpf.mapkinds.count import COUNT
from pybpf.mapkinds.hist import HIST
from pybpf.mapkinds.lhist import LHIST, LhistParams
from pybpf.mapkinds.max import MAX
from pybpf.mapkinds.min import MIN
from pybpf.mapkinds.stats import STATS
from pybpf.mapkinds.sum import SUM
from pybpf.mapkinds.tseries import TSERIES, TSeriesParams
from pybpf.mapkinds.value import VALUE

_KINDS = {k.kind: k for k in (VALUE, COUNT, SUM, MIN, MAX, AVG, STATS, HIST, LHIST, TSERIES)}


def kind_for(kind: MapKind) -> Kind:
    return _KINDS[kind]


__all__ = ["Kind", "LhistParams", "MapKind", "Stats", "TSeriesParams", "kind_for"]
