"""`tseries(v, interval_ns, num_intervals[, agg])`: a time series, as bpftrace 0.26 keeps and
prints it: the last `num_intervals` intervals of `interval_ns`, each holding the last value
assigned in it, or with agg "avg", "max", "min" or "sum" their average, maximum, minimum or sum.

    spec.tseries = TSeriesParams(100_000_000, 20, "min")     # tseries(rand % 10, 100ms, 20, "min")

Layout (bpftrace's): the BPF key ends in a u64 bucket, epoch % num_intervals, where the epoch is
the TAI clock (bpf_ktime_get_tai_ns) divided by interval_ns; per CPU the value is {i64 value, u64
meta, u64 epoch}. meta is the TAI time of the assignment (no agg: the CPU that assigned last wins)
or the count (avg). A slot whose epoch is not the current one starts afresh; epoch 0 was never
written. User space merges the CPUs of each bucket's latest epoch, then shows every key over the
same window: the `num_intervals` epochs up to the latest any key has, from each key's first.

Text: a graph per key, a row per interval (`hh:mm:ss.ms`, its local wall time), the value's `*`
placed between the key's least and greatest value (a `.` marks zero when the range spans it; `-`
where an interval has no value). JSON: `[{"interval_start": "ISO time", "value": v}, ...]`.
"""

from __future__ import annotations

import struct
import time

from pybpf.mapkinds.base import Aggregation, MapKind, gauge_family, per_cpu_struct
from pybpf.records import NamedTuple
from pybpf.uapi.bpf import BpfFunc

AGGREGATIONS = ("avg", "max", "min", "sum")    # or "": the last value assigned
GRAPH_WIDTH = 53
SCALE_PADDING = 21          # the least value's column, left-justified; the greatest's right-justified
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# The time unit rows are printed in: the coarsest that divides the interval (bpftrace's
# duration_str): its digits after the seconds and its name in the header.
UNITS = ((1_000_000_000, 0, ""), (1_000_000, 3, "ms"), (1_000, 6, "us"), (1, 9, "ns"))


class TSeriesParams(NamedTuple):
    # a NamedTuple, as LhistParams: a cache hit imports this module, and dataclasses costs ~5 ms
    interval_ns: int
    num_intervals: int
    agg: str = ""


class Series(NamedTuple):
    """One key's time series: (epoch, value or None) from its first interval in the window to the
    window's end; `latest` is the newest epoch the key has (keys print oldest first)."""
    latest: int
    points: tuple[tuple[int, int | None], ...]


def _f32(x: float) -> float:
    """x rounded to a C float: bpftrace places points in float arithmetic."""
    return struct.unpack("f", struct.pack("f", x))[0]


def _scaled(width: int, part: int, whole: int) -> int:
    """int(float(width) * float(part) / float(whole)), as C computes it."""
    return int(_f32(_f32(_f32(width) * _f32(part)) / _f32(whole)))


def _reduce(cpus, agg: str) -> tuple[int, int] | None:
    """(epoch, value) of one bucket: the CPUs' values of its latest epoch merged, None if no CPU
    wrote it (bpftrace's reduce_tseries_value)."""
    by_epoch: dict[int, list[int]] = {}
    for value, meta, epoch in cpus:
        if not epoch:
            continue
        current = by_epoch.get(epoch)
        if current is None:
            by_epoch[epoch] = [value, meta]
        elif agg == "":
            if meta > current[1]:
                current[:] = value, meta
        elif agg in ("avg", "sum"):
            current[0] += value
            current[1] += meta
        else:
            current[0] = (min if agg == "min" else max)(current[0], value)
    if not by_epoch:
        return None
    epoch = max(by_epoch)
    value, meta = by_epoch[epoch]
    if agg == "avg":
        value = abs(value) // meta * (1 if value >= 0 else -1)    # C's division: toward zero
    return epoch, value


class TSeries(Aggregation):
    kind = MapKind.TSERIES
    has_buckets = True
    json_type = "tseries"
    text_separator = ":"      # `@a[one]:` then the graph, as bpftrace 0.26 prints it
    read_type = None          # a value per interval, each interval a key of its own

    def value_size(self, spec) -> int:
        return 24

    def array_entries(self, spec) -> int:
        return spec.tseries.num_intervals

    # --- lowering ---------------------------------------------------------------------------------

    def lower_operand(self, fb, spec, value):
        """The value with the time it is assigned at, its epoch and the map's aggregation."""
        now = fb.helper(BpfFunc.ktime_get_tai_ns)
        epoch = fb.b.udiv(now, fb.constant(spec.tseries.interval_ns))
        return value, now, epoch, spec.tseries

    def lower_bucket(self, fb, spec, operand):
        return fb.b.urem(operand[2], fb.constant(spec.tseries.num_intervals))

    @staticmethod
    def _fresh_meta(fb, operand):
        value, now, epoch, params = operand
        return now if params.agg == "" else fb.constant(1 if params.agg == "avg" else 0)

    def lower_update(self, fb, ptr, operand) -> None:
        """Branch-free: a slot of another epoch starts afresh, one of this epoch aggregates."""
        b = fb.b
        value, now, epoch, params = operand
        old, meta = fb.load64(ptr), fb.load64(ptr, 8)
        same = b.icmp_unsigned("==", fb.load64(ptr, 16), epoch)
        if params.agg == "":
            merged, merged_meta = value, now
        elif params.agg in ("avg", "sum"):
            merged = b.add(old, value)
            merged_meta = b.add(meta, fb.constant(1)) if params.agg == "avg" else meta
        else:
            wins = b.icmp_signed("<" if params.agg == "min" else ">", value, old)
            merged, merged_meta = b.select(wins, value, old), meta
        fb.store64(b.select(same, merged, value), ptr)
        fb.store64(b.select(same, merged_meta, self._fresh_meta(fb, operand)), ptr, 8)
        fb.store64(epoch, ptr, 16)

    def lower_initial(self, fb, buf, operand) -> None:
        fb.store64(operand[0], buf)
        fb.store64(self._fresh_meta(fb, operand), buf, 8)
        fb.store64(operand[2], buf, 16)

    # --- decoding ---------------------------------------------------------------------------------

    def entries(self, spec, keys, values_raw, ncpu, hide_zero, typed_values):
        params = spec.tseries
        per_key: dict[tuple, dict[int, int]] = {}
        fields = per_cpu_struct("qQQ", ncpu).iter_unpack(values_raw)
        for key, flat in zip(keys, fields):
            found = _reduce(zip(flat[0::3], flat[1::3], flat[2::3]), params.agg)
            values = per_key.setdefault(key[:-1], {})
            if found is not None:
                values[found[0]] = found[1]
        per_key = {key: values for key, values in per_key.items() if values}
        if not per_key:
            return []
        last = max(max(values) for values in per_key.values())
        first = last - params.num_intervals + 1
        entries = []
        for key, values in per_key.items():
            shown = [epoch for epoch in values if epoch >= first]
            start = min(shown) if shown else last
            points = tuple((epoch, values.get(epoch)) for epoch in range(start, last + 1))
            entries.append((key, Series(max(values), points)))
        return entries

    # --- printing ---------------------------------------------------------------------------------

    def plain_type(self, spec) -> type | None:
        return None

    def entry_sort_key(self, spec):
        return lambda entry: entry[1].latest          # least recently updated first

    def text_value(self, spec, text_of):
        return lambda series: "\n" + _graph(series.points, spec.tseries.interval_ns)

    def json_value(self, spec, json_of):
        interval = spec.tseries.interval_ns

        def render(series: Series) -> str:
            wall = _wall_clock()
            return "[" + ",".join(
                f'{{"interval_start":"{_iso_time(wall(epoch * interval))}","value":{json_of(v)}}}'
                for epoch, v in series.points if v is not None) + "]"
        return render

    def metric_families(self, spec, name, doc, labels, keyed, label_values):
        """The value of each key's newest interval, as a gauge."""
        latest = [(key, next(v for _, v in reversed(s.points) if v is not None))
                  for key, s in keyed if any(v is not None for _, v in s.points)]
        return [gauge_family(name, doc, labels, latest)]


def _wall_clock():
    """TAI nanoseconds -> wall-clock nanoseconds. TAI is ahead of UTC by whole seconds (37, or
    0 where the kernel was never told): the two clocks read one after the other give it."""
    apart = time.clock_gettime_ns(time.CLOCK_TAI) - time.clock_gettime_ns(time.CLOCK_REALTIME)
    offset = round(apart / 1e9) * 1_000_000_000
    return lambda tai_ns: tai_ns - offset


def _clock_time(wall_ns: int, fmt: str, digits: int) -> str:
    seconds, ns = divmod(wall_ns, 1_000_000_000)
    text = time.strftime(fmt, time.localtime(seconds))
    return text + (f".{ns // 10 ** (9 - digits):0{digits}d}" if digits else "")


def _iso_time(wall_ns: int) -> str:
    return _clock_time(wall_ns, "%Y-%m-%dT%H:%M:%S", 9)


def _graph(points, interval_ns: int) -> str:
    """bpftrace 0.26's time-series graph (its TextEmitter<TimeSeries>), ending in a newline."""
    values = [v for _, v in points if v is not None]
    if not values:
        return "<no data>"
    lo, hi = min(values), max(values)
    if lo == hi:              # room on both sides of a flat line, short of overflowing
        lo, hi = (lo - 1 if lo > INT64_MIN else lo), (hi + 1 if hi < INT64_MAX else hi)
    interval = (points[-1][0] - points[0][0]) * interval_ns // max(len(points) - 1, 1)
    scale, digits, unit = next(u for u in UNITS if interval % u[0] == 0)
    time_size = 8 + (1 + digits if digits else 0)
    header = "hh:mm:ss" + ("." + unit if unit else "")
    bounds = f"{lo:<{SCALE_PADDING}}{hi:>{GRAPH_WIDTH - SCALE_PADDING}}"
    rows = [" " * (time_size + 1) + bounds,
            f"{header:<{time_size + 1}}|" + "_" * (GRAPH_WIDTH - 2) + "|"]
    zero = _scaled(GRAPH_WIDTH, -lo, hi - lo) if lo < 0 < hi else 0
    wall = _wall_clock()
    for epoch, v in points:
        line = [" "] * GRAPH_WIDTH
        line[0] = line[-1] = "|"
        if zero > 0:
            line[zero] = "."
        stamp = _clock_time(wall(epoch * interval_ns), "%H:%M:%S", digits)
        if v is None:
            rows.append(f"{stamp} {''.join(line)} -")
            continue
        point = _scaled(GRAPH_WIDTH - 1, v - lo, hi - lo)
        line[max(0, min(GRAPH_WIDTH - 1, point))] = "*"
        rows.append(f"{stamp} {''.join(line)} {v}")
    rows.append(" " * time_size + " v" + "_" * (GRAPH_WIDTH - 2) + "v")
    rows.append(" " * time_size + " " + bounds)
    return "\n".join(rows) + "\n"


TSERIES = TSeries()
