"""`avg(v)`: {u64 count, i64 total} per CPU, summed into a `Stats`; prints the integer average.

    AVG.entries(spec, [()], q(2, 40) + q(1, -23), 2, False, ...)    # [((), Stats(3, 17))]
    AVG.text_value(spec, str)(Stats(3, 17))                         # '5'

Keyed avg maps sort by their average. In metrics: a summary (`_count`, `_sum`) and the average as
printed in a `_average` gauge.
"""

from __future__ import annotations


from pybpf import types as T
from pybpf.mapkinds.base import Aggregation, MapKind, add64, per_cpu_struct
from pybpf.records import NamedTuple


class Stats(NamedTuple):
    """The value of an avg or stats map."""
    count: int
    total: int

    @property
    def average(self) -> int:
        # C-style truncation toward zero, as bpftrace prints it.
        if not self.count:
            return 0
        q = abs(self.total) // self.count
        return q if self.total >= 0 else -q


def _by_average(entry: tuple) -> int:
    return entry[1].average


def _average(stats: Stats) -> str:
    return str(stats.average)


class Avg(Aggregation):
    kind = MapKind.AVG
    json_type = "stats"
    text_trailer = "\n"
    read_type = T.IntType(8, True)

    def value_size(self, spec) -> int:
        return 16

    def lower_update(self, fb, ptr, value) -> None:
        add64(fb, ptr, fb.constant(1))
        add64(fb, ptr, value, 8)

    def lower_initial(self, fb, buf, value) -> None:
        fb.store64(fb.constant(1), buf)
        fb.store64(value, buf, 8)

    def lower_merge(self, fb, total, ptr) -> None:
        add64(fb, total, fb.load64(ptr))
        add64(fb, total, fb.load64(ptr, 8), 8)

    def lower_read(self, fb, total):
        """The average as printed: the total over the count, truncated toward zero."""
        return fb.divide("/", fb.load64(total, 8), fb.load64(total), True)

    def entries(self, spec, keys, values_raw, ncpu, hide_zero, typed_values):
        entries = []
        for key, cpus in zip(keys, per_cpu_struct("Qq", ncpu).iter_unpack(values_raw)):
            stats = Stats(sum(cpus[0::2]), sum(cpus[1::2]))
            if stats.count or not hide_zero:
                entries.append((key, stats))
        return entries

    def plain_type(self, spec) -> type | None:
        return None

    def entry_sort_key(self, spec):
        return _by_average

    def text_value(self, spec, text_of):
        return _average

    def json_value(self, spec, json_of):
        return _average

    def metric_families(self, spec, name, doc, labels, keyed, label_values):
        from prometheus_client.metrics_core import GaugeMetricFamily, SummaryMetricFamily
        summary = SummaryMetricFamily(name, doc, labels=labels)
        average = GaugeMetricFamily(name + "_average", f"{spec.name}: the average as printed "
                                    "(truncated toward zero)", labels=labels)
        for key, stats in keyed:
            summary.add_metric(key, stats.count, stats.total)
            average.add_metric(key, stats.average)
        return [summary, average]


AVG = Avg()
