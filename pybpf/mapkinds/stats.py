"""`stats(v)`: avg's layout, reading, order and metrics; prints count, average and total.

    STATS.text_value(spec, str)(Stats(3, 63))    # 'count 3, average 21, total 63'
    STATS.json_value(spec, str)(Stats(3, 63))    # '{"count": 3, "average": 21, "total": 63}'
"""

from __future__ import annotations

from pybpf.mapkinds.avg import Avg, Stats
from pybpf.mapkinds.base import MapKind


def _text(s: Stats) -> str:
    return f"count {s.count}, average {s.average}, total {s.total}"


def _json(s: Stats) -> str:
    return f'{{"count": {s.count}, "average": {s.average}, "total": {s.total}}}'


class StatsKind(Avg):
    kind = MapKind.STATS
    read_type = None          # three numbers, not one

    def text_value(self, spec, text_of):
        return _text

    def json_value(self, spec, json_of):
        return _json


STATS = StatsKind()
