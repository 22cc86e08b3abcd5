"""Map kinds: one module per aggregation, each an object that holds its value layout, its update
lowering, its decoding, and its text, JSON and metrics forms.

    from pybpf.mapkinds import MapKind, kind_for
    kind = kind_for(MapKind.HIST)
    kind.has_buckets, kind.value_size(spec)      # True, 8: a u64 count per (key, bucket)

`MapKind` is what the compiled program records (pybpf.program.MapSpec.kind); both sides ask
kind_for(spec.kind). The questions a kind answers are pybpf.mapkinds.base.Kind's. A new kind is
one module here, named as its MapKind member's value and holding its object under the member's
name (count.py's COUNT), imported when first asked for; the MapKind member; and its tests (tests/pybpf/test_mapkinds.py,
tests/backend/test_mapkind_lowering.py); docs/pipeline.md, "Map kinds", has the whole list.
"""

from __future__ import annotations

import sys

from pybpf.mapkinds.base import Kind, MapKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.mapkinds.avg import Stats
    from pybpf.mapkinds.lhist import LhistParams
    from pybpf.mapkinds.tseries import TSeriesParams

_KINDS: dict[MapKind, Kind] = {}


def kind_for(kind: MapKind) -> Kind:
    """The object of `kind`: `pybpf.mapkinds.<kind.value>.<kind.name>` (COUNT in count.py), its
    module imported on first use, so a cache hit imports only the kinds its maps have."""
    found = _KINDS.get(kind)
    if found is None:
        name = f"pybpf.mapkinds.{kind.value}"
        __import__(name)
        found = _KINDS[kind] = getattr(sys.modules[name], kind.name)
    return found


# The kinds' own types, from their modules on first use (PEP 562), as the kinds are.
_LAZY = {"LhistParams": "lhist", "Stats": "avg", "TSeriesParams": "tseries"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        module = f"pybpf.mapkinds.{_LAZY[name]}"
        __import__(module)
        value = globals()[name] = getattr(sys.modules[module], name)
        return value
    raise AttributeError(f"module 'pybpf.mapkinds' has no attribute {name!r}")


__all__ = ["Kind", "LhistParams", "MapKind", "Stats", "TSeriesParams", "kind_for"]
