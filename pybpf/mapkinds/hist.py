"""`hist(v[, k])`: power-of-two buckets, each split in 2^k (bpftrace 0.26). A count per (key,
bucket): the u64 bucket index ends the BPF key.

    HIST.entries(spec, [(7, 3), (7, 5)], q(1) + q(4), 1, False, ...)   # [((7,), {3: 1, 5: 4})]
    HIST.layout(spec).label(5)                                          # '[8, 16)'

Bucket index, k = 0: 0 for negative values, 1 for zero, 2 + floor(log2 v) otherwise (66 in all).
With k > 0, as bpftrace: values below 2^k have a bucket each (v + 1); above, with p = floor(log2
v) and l = p - k, the bucket is ((l + 1) << k) + the k bits of v below its top bit + 1. A
scalar hist is a PERCPU_ARRAY with one element per bucket. Text: each key's header line, then from
the lowest to the highest non-empty bucket its label left-justified in 16 columns, the count in 8
and a 52-column bar scaled to the largest bucket, then a blank line; keys sort by total count.
JSON: a list of {"min", "max", "count"}. Metrics: a histogram with cumulative `le` buckets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from pybpf.mapkinds.base import MapKind, per_cpu_struct
from pybpf.mapkinds.count import Count

BUCKETS = 66                          # negative, 0, then 2 + log2 for 64 bits
BAR_WIDTH = 52
_BARS = ["@" * n + " " * (BAR_WIDTH - n) for n in range(BAR_WIDTH + 1)]
_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")     # one per power of 1024

Bounds = Callable[[int], tuple]      # index -> (lo, hi): hi exclusive, None at an open end


class BucketLayout:
    """Labels of a hist or lhist map's buckets: `[4, 8)` in text, `"min": 4, "max": 7, ` in JSON.

    Bounds are (lo, hi) with hi exclusive; None marks the open end of the outermost buckets."""

    def __init__(self, bounds: Bounds, number: Callable[[int], str], singletons: int = 0):
        self.bounds = bounds
        self._number = number
        # hist: the buckets of the values below this print as [0], [1], ...
        self._singletons = singletons
        # Big maps repeat the same few buckets for every key: render each one once.
        self._text_prefixes: dict[int, str] = {}
        self._prefix_list: list[str] = []
        self._json_ranges: dict[int, str] = {}

    def text_prefix(self, index: int) -> str:
        """The label left-justified in its 16 columns."""
        prefix = self._text_prefixes.get(index)
        if prefix is None:
            prefix = self._text_prefixes[index] = f"{self.label(index):<16}"
        return prefix

    def text_prefixes(self, last: int) -> list[str]:
        """text_prefix of every index up to `last`, as one list to index into."""
        prefixes = self._prefix_list
        if len(prefixes) <= last:
            prefixes.extend(self.text_prefix(i) for i in range(len(prefixes), last + 1))
        return prefixes

    def json_range(self, index: int) -> str:
        json_range = self._json_ranges.get(index)
        if json_range is None:
            lo, hi = self.bounds(index)
            json_range = self._json_ranges[index] = (
                ("" if lo is None else f'"min": {lo}, ') + ("" if hi is None else f'"max": {hi - 1}, '))
        return json_range

    def label(self, index: int) -> str:
        lo, hi = self.bounds(index)
        if lo is None:
            return f"(..., {self._number(hi)})"
        if hi is None:
            return f"[{self._number(lo)}, ...)"
        if hi == lo + 1 and lo < self._singletons:
            return f"[{lo}]"
        return f"[{self._number(lo)}, {self._number(hi)})"

    def text(self, counts: dict[int, int]) -> str:
        """The bucket lines, each ending in a newline; a newline first, after the key's header."""
        shown = [i for i, n in counts.items() if n > 0]
        if not shown:
            return "\n"
        top, last = max(counts.values()), max(shown)
        prefixes, count = self.text_prefixes(last), counts.get
        # Integer arithmetic gives the same bar as bpftrace's float32 n / max * 52 for every count.
        return "\n" + "".join([f"{prefixes[i]}{n:>8} |{_BARS[n * BAR_WIDTH // top]}|\n"
                               for i in range(min(shown), last + 1) for n in (count(i, 0),)])

    def json(self, counts: dict[int, int]) -> str:
        shown = [i for i, n in counts.items() if n > 0]
        if not shown:
            return "[]"
        return "[" + ", ".join(f'{{{self.json_range(i)}"count": {counts.get(i, 0)}}}'
                               for i in range(min(shown), max(shown) + 1)) + "]"


def _bucket_start(index: int, bits: int) -> int:
    """The smallest value of bucket `index` past the single-value ones: 2^k intervals per power
    of two, each (index >> k) - 1 bits wide (bpftrace's hist_index_label)."""
    n = 1 << bits
    return (1 << ((index >> bits) - 1)) * (n + (index & (n - 1)))


def _hist_layout(bits: int) -> BucketLayout:
    singles = 2 << bits              # buckets 1..2^(k+1) hold one value each: 0 .. 2^(k+1) - 1

    def bounds(index: int) -> tuple[int | None, int | None]:
        if index == 0:
            return None, 0
        if index <= singles:
            return index - 1, index
        return _bucket_start(index - 1, bits), _bucket_start(index, bits)

    def label(value: int) -> str:
        if value == 0:
            return "0"
        # a multiple of a power of two by 2^k..2^(k+1)-1: the power picks the suffix
        decade = (value.bit_length() - 1 - bits) // 10
        # bpftrace 0.17 stops at T (2^50 prints as 1024T); current bpftrace goes on to P and E.
        return f"{value >> (10 * decade)}{_SUFFIXES[decade]}"

    return BucketLayout(bounds, label, singletons=singles)


_HIST_LAYOUTS = [_hist_layout(bits) for bits in range(6)]


def _by_total(entry: tuple) -> int:
    return sum(entry[1].values())


class Hist(Count):
    """A count per bucket: count's value layout and update, the bucket in the key."""
    kind = MapKind.HIST
    has_buckets = True
    json_type = "hist"
    read_type = None          # a count per bucket, each bucket a key of its own

    def layout(self, spec) -> BucketLayout:
        return _HIST_LAYOUTS[spec.hist_bits]

    def array_entries(self, spec) -> int:
        bits = spec.hist_bits
        # the largest bucket is that of 2^64 - 1: p = 63, its k bits below all set
        return BUCKETS if not bits else ((64 - bits) << bits) + (1 << bits) + 1

    def lower_bucket(self, fb, spec, value):
        """0 for negatives, 1 for zero, 2 + floor(log2(v)) otherwise (k = 0); branch-free. The
        steps and the sign check a value's known bound rules out are left out (hist(v & 0xffff))."""
        b, c = fb.b, fb.constant
        most = fb.upper_bound(value)
        n, r = value, c(0)
        for shift in (32, 16, 8, 4, 2, 1):
            if most < 1 << shift:
                continue
            big = b.icmp_unsigned(">=", n, c(1 << shift))
            amount = b.select(big, c(shift), c(0))
            n = b.lshr(n, amount)
            r = b.add(r, amount)
        bits = spec.hist_bits
        if bits:
            # below 2^k: one bucket per value; above: (l + 1) << k, the k bits under the top
            # bit, + 1, with l = floor(log2 v) - k (kept >= 0: the select drops it then)
            mask = (1 << bits) - 1
            small = b.icmp_signed("<=", value, c(mask))
            low = b.select(small, c(0), b.sub(r, c(bits)))
            split = b.add(b.add(b.shl(b.add(low, c(1)), c(bits)),
                                b.and_(b.lshr(value, low), c(mask))), c(1))
            bucket = b.select(small, b.add(value, c(1)), split)
        else:
            positive = b.add(r, c(2))
            bucket = b.select(b.icmp_signed("==", value, c(0)), c(1), positive)
        if most < 1 << 63:
            return bucket
        return b.select(b.icmp_signed("<", value, c(0)), c(0), bucket)

    def entries(self, spec, keys, values_raw, ncpu, hide_zero, typed_values):
        totals = map(sum, per_cpu_struct("Q", ncpu).iter_unpack(values_raw))
        hists: dict[tuple, dict[int, int]] = defaultdict(dict)
        for key, total in zip(keys, totals):
            hists[key[:-1]][key[-1]] = total
        if hide_zero:
            # an array's buckets all exist: none counted means never used
            return [(key, counts) for key, counts in hists.items() if any(counts.values())]
        return list(hists.items())

    def plain_type(self, spec) -> type | None:
        return None

    def entry_sort_key(self, spec):
        return _by_total

    def text_value(self, spec, text_of):
        return self.layout(spec).text

    def json_value(self, spec, json_of):
        return self.layout(spec).json

    def metric_families(self, spec, name, doc, labels, keyed, label_values):
        """Cumulative buckets from the lowest to the highest bucket used by any key of the map
        (every key gets the same `le` set), then +Inf. No `_sum`: the kernel counts values per
        bucket only."""
        from prometheus_client.metrics_core import HistogramMetricFamily
        from prometheus_client.samples import Sample
        from prometheus_client.utils import floatToGoString
        family = HistogramMetricFamily(name, doc, labels=labels)
        bounds = self.layout(spec).bounds
        used = [i for _, counts in keyed for i, n in counts.items() if n]
        indexes = range(min(used), max(used) + 1) if used else range(0)
        upper = [(i, bounds(i)[1]) for i in indexes]
        les = [(i, floatToGoString(hi - 1)) for i, hi in upper if hi is not None]
        for key, counts in keyed:
            buckets, cumulative = [], 0
            for i, le in les:
                cumulative += counts.get(i, 0)
                buckets.append((le, cumulative))
            total = sum(counts.values())
            buckets.append(("+Inf", total))
            family.add_metric(key, buckets, None)
            family.samples.append(Sample(name + "_count", dict(zip(labels, key)), total))
        return [family]


HIST = Hist()
