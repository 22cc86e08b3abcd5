"""`sum(v)`: a count that adds v instead of one.

A scalar sum stays in a PERCPU_HASH: its value cannot tell "never updated" from sum(0), which
prints, so an array (whose elements all exist) would print a sum nobody made.
"""

from __future__ import annotations

from pybpf import types as T
from pybpf.mapkinds.base import MapKind
from pybpf.mapkinds.count import Count


class Sum(Count):
    kind = MapKind.SUM
    read_type = T.IntType(8, True)
    scalar_in_array = False

    def increment(self, fb, value):
        return value


SUM = Sum()
