"""The aggregations' call side: count(), sum(v), min(v), max(v), avg(v), stats(v), hist(v),
lhist(v, min, max, step), tseries(v, interval_ns, num_intervals[, agg]). A call types its map; pybpf.program.MapKind and lower_maps.aggregate do
the rest."""

from __future__ import annotations

from pybpf import ast
from pybpf.builtins.entry import Aggregation
from pybpf.checked import INT, is_int
from pybpf.mapkinds import LhistParams, MapKind, TSeriesParams
from pybpf.mapkinds.tseries import AGGREGATIONS as TSERIES_AGGREGATIONS


def integer_value(c, call) -> bool:
    """The value aggregated, when there is one, is an integer."""
    if not call.args:
        return True
    t = c.expr(call.args[0])
    if t is not None and not is_int(t):
        c.error(f"{call.name}() expects an integer argument, got {t}", call.args[0].span)
        return False
    return True


def check_value(c, call, m, kind: MapKind) -> None:
    if integer_value(c, call):
        c.assign_map(m, kind, INT)


HIST_MAX_BITS = 5         # bpftrace: 0 <= k <= 5


def check_hist(c, call, m, kind: MapKind) -> None:
    """hist(v[, k]): k a constant, 2^k buckets per power of two (bpftrace 0.26)."""
    if not integer_value(c, call):
        return
    bits = 0
    if len(call.args) == 2:
        bits = c.constant_int(call.args[1])
        if bits is None:
            return
        if not 0 <= bits <= HIST_MAX_BITS:
            c.error(f"hist: bits {bits} must be 0..{HIST_MAX_BITS}", call.args[1].span)
            return
    c.assign_map(m, kind, INT, hist_bits=bits)


def check_lhist(c, call, m, kind: MapKind) -> None:
    if not integer_value(c, call):
        return
    bounds = [c.constant_int(a) for a in call.args[1:]]
    if None in bounds:
        return
    lo, hi, step = bounds
    if lo < 0 or hi <= lo or step <= 0 or (hi - lo) // step > 1000:
        c.error("lhist() needs 0 <= min < max, step > 0 and at most 1000 buckets", call.span)
        return
    c.assign_map(m, kind, INT, LhistParams(lo, hi, step))


TSERIES_MAX_INTERVALS = 10000     # buckets per key, as a hist's: each is an element of the map


def check_tseries(c, call, m, kind: MapKind) -> None:
    """tseries(v, interval_ns, num_intervals[, agg]): interval_ns a constant duration (100ms),
    num_intervals a constant, agg "avg", "max", "min" or "sum" (bpftrace 0.26)."""
    if not integer_value(c, call):
        return
    interval, count = (c.constant_int(a) for a in call.args[1:3])
    if interval is None or count is None:
        return
    if interval <= 0:
        c.error("tseries: interval_ns must be a positive duration (100ms, 1s, ...)", call.args[1].span)
        return
    if not 1 <= count <= TSERIES_MAX_INTERVALS:
        c.error(f"tseries: num_intervals must be between 1 and {TSERIES_MAX_INTERVALS}",
                call.args[2].span)
        return
    agg = ""
    if len(call.args) == 4:
        arg = call.args[3]
        agg = arg.value.decode(errors="replace") if isinstance(arg, ast.String) else None
        if agg not in TSERIES_AGGREGATIONS:
            c.error(f"tseries: the aggregation must be a string literal, one of "
                    f"{', '.join(map(repr, TSERIES_AGGREGATIONS))}", arg.span)
            return
    c.assign_map(m, kind, INT, tseries=TSeriesParams(interval, count, agg))


BUILTINS = (
    Aggregation(MapKind.COUNT, 0, check_value),
    Aggregation(MapKind.SUM, 1, check_value),
    Aggregation(MapKind.MIN, 1, check_value),
    Aggregation(MapKind.MAX, 1, check_value),
    Aggregation(MapKind.AVG, 1, check_value),
    Aggregation(MapKind.STATS, 1, check_value),
    Aggregation(MapKind.HIST, 1, check_hist, optional=1),
    Aggregation(MapKind.LHIST, 4, check_lhist),
    Aggregation(MapKind.TSERIES, 3, check_tseries, optional=1),
)
