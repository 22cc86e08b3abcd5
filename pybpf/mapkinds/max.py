"""`max(v)`: min's layout and reading, with the greatest value winning."""

from __future__ import annotations

import builtins

from pybpf.mapkinds.base import MapKind
from pybpf.mapkinds.min import Min


class Max(Min):
    kind = MapKind.MAX
    beats = ">"
    pick = staticmethod(builtins.max)


MAX = Max()
