"""What every map kind answers, and the helpers several kinds share.

    kind = kind_for(MapKind.COUNT)                  # pybpf.mapkinds
    kind.value_size(spec)                           # 8: an i64 per CPU
    kind.entries(spec, keys, values_raw, ncpu, hide_zero=False, typed_values=...)
    kind.text_value(spec, text_of)(12)              # '12'

A kind is asked by both sides of the hand-off, so this package imports neither the front end's
passes, nor pybpf.backend, nor pybpf.runtime, nor (at import time) llvmlite or prometheus_client:
lowering methods get the code generator (`fb`, a backend FunctionBuilder) and use its IR builder
`fb.b` and `fb.constant`; metrics methods import prometheus_client when called.
"""

from __future__ import annotations

import enum
import functools
import struct
from operator import itemgetter
from collections.abc import Callable, Iterable

from pybpf import types as T

Entries = list[tuple[tuple, object]]
# typed_values(t, raw, size): the values of language type t laid `size` bytes apart in raw: the run
# side's decoding of plain values (strings, probes, tuples), handed to the kinds that hold them.
TypedValues = Callable[[T.Type, bytes, int], Iterable]

BY_VALUE = itemgetter(1)      # an entry's sort key when its value is an int


class MapKind(enum.Enum):
    """The kind a map's updates give it: what the compiled program records; kind_for() gives
    the object that knows its layout, lowering, decoding and printed forms."""
    VALUE = "value"    # plain assignment: @m[k] = v
    COUNT = "count"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    AVG = "avg"
    STATS = "stats"
    HIST = "hist"
    LHIST = "lhist"
    TSERIES = "tseries"

    @property
    def is_aggregation(self) -> bool:
        return self is not MapKind.VALUE


class Kind:
    """A map kind. Subclasses set the class attributes and override what differs. `spec` is the
    map's pybpf.program.MapSpec (not imported here: pybpf.program imports this package)."""
    kind: MapKind
    percpu = False            # one value per possible CPU, combined when read
    has_buckets = False       # the BPF key ends in a u64 bucket index; the value counts that bucket
    scalar_in_array = False   # without a key, a PERCPU_ARRAY indexed by bucket (or 0), not a hash
    json_type = "map"         # the "type" of the map's JSON object
    text_trailer = ""         # text after the map's entries
    text_separator = ": "     # between `@name[key]` and the value's text
    # The type a for-loop or len() reads of a value (`$kv.1`), the CPUs combined; None: a loop
    # cannot iterate this kind (bpftrace iterates neither hist, lhist nor stats maps).
    read_type: T.Type | None = None

    # --- layout -----------------------------------------------------------------------------------

    def value_size(self, spec) -> int:
        """Bytes of one value (of one CPU's, for per-CPU kinds)."""
        return 8

    def array_entries(self, spec) -> int:
        """Elements of the per-CPU array a scalar map of this kind lives in (scalar_in_array)."""
        return 1

    def loop_type(self, value: T.Type) -> T.Type | None:
        """$kv.1's type in `for ($kv : @m)` over a map of this kind whose values are `value`."""
        return self.read_type

    # --- decoding ---------------------------------------------------------------------------------

    def entries(self, spec, keys: Iterable[tuple], values_raw: bytes, ncpu: int,
                hide_zero: bool, typed_values: TypedValues) -> Entries:
        """(key tuple, Python value) for each value in values_raw, in the order of `keys` (each
        ending in its bucket index when has_buckets). A value is `ncpu` per-CPU slots of
        round_up(value_size, 8) bytes. hide_zero: leave out entries whose value says "never
        updated" (an array's elements all exist)."""
        raise NotImplementedError

    # --- printing ---------------------------------------------------------------------------------

    def plain_type(self, spec) -> type | None:
        """int or str when the values print as str() of themselves (the printer's fast paths),
        None when they need text_value."""
        return None

    def entry_sort_key(self, spec) -> Callable[[tuple], object] | None:
        """The sort key of a (key, value) entry for printing, after a sort by key; None: by key."""
        return BY_VALUE

    def text_value(self, spec, text_of: Callable[[object], str]) -> Callable[[object], str]:
        """A value as printed after `@name[key]: ` in text; text_of is the run side's form of a
        plain value."""
        return text_of

    def json_value(self, spec, json_of: Callable[[object], str]) -> Callable[[object], str]:
        """A value as JSON; json_of is the run side's form of a plain value."""
        return json_of

    # --- metrics ----------------------------------------------------------------------------------

    def metric_families(self, spec, name: str, doc: str, labels: list[str],
                        keyed: list[tuple[list[str], object]],
                        label_values: Callable[[tuple], list[str]]) -> list:
        """prometheus_client metric families of the entries, each key already flattened into the
        values of `labels`; label_values is the run side's flattening of parts into label text."""
        return [gauge_family(name, doc, labels, keyed)]


class Aggregation(Kind):
    """A kind made by an aggregation call (count(), hist(v), ...): per-CPU values, each updated
    in place by one lookup (backend lower_maps.MapLowering.aggregate)."""
    percpu = True
    scalar_in_array = True

    def plain_type(self, spec) -> type | None:
        return int

    def lower_operand(self, fb, spec, value):
        """What lower_bucket, lower_update and lower_initial receive: the call's value (None for
        count()), or what a kind computes from it once per update (tseries: with its epoch)."""
        return value

    def lower_bucket(self, fb, spec, value):
        """The u64 bucket index the key ends in, for kinds with buckets; None for the others."""
        return None

    def lower_update(self, fb, ptr, value) -> None:
        """Fold `value` (an i64, None for count()) into this CPU's value at ptr."""
        raise NotImplementedError

    def lower_initial(self, fb, buf, value) -> None:
        """Write the first value of a new entry into buf."""
        raise NotImplementedError

    def lower_merge(self, fb, total, ptr) -> None:
        """Fold one CPU's value at ptr into total, a value of this layout that starts zeroed
        (a for-loop reads a per-CPU value as the CPUs' total, as user space prints it)."""
        raise NotImplementedError

    def lower_read(self, fb, total):
        """The i64 a loop reads from the merged total."""
        return fb.load64(total)


@functools.cache
def per_cpu_struct(fields: str, count: int) -> struct.Struct:
    """One value's fields repeated for every CPU, e.g. '<qqqq' or '<qQqQ': iter_unpack over a map's
    values then yields each value's per-CPU fields, and sum() of them runs in C."""
    return struct.Struct("<" + fields * count)


def add64(fb, ptr, amount, offset: int = 0) -> None:
    """*(u64 *)(ptr + offset) += amount, a plain load, add and store: per-CPU values need no atomics."""
    fb.store64(fb.b.add(fb.load64(ptr, offset), amount), ptr, offset)


# --- metrics helpers: prometheus_client is imported when a scrape builds families ------------------

def label_names(stem: str, count: int) -> list[str]:
    return [stem] if count == 1 else [f"{stem}{i}" for i in range(count)]


# Label names Prometheus gives a meaning to (`le`: a histogram's buckets, `quantile`: a summary's;
# names starting with `__` are reserved) or that pybpf's info metrics use for values (`value`,
# `value0`, ...): a record field named so becomes `key_<name>`, as does one that another label of
# the key already has (a positional `key0`, an earlier field: `key_` is added until it is unique).
# A pattern, compiled (and cached by re) at first use: a cache hit imports no re.
_RESERVED_LABEL = r"le|quantile|__.*|value\d*"


def key_labels(types: tuple[T.Type, ...]) -> list[str]:
    """The label names of a map's key parts. A record's fields are named by their names, a nested
    record's as `outer_inner` and a tuple's elements inside a record as `name0`, `name1`, ...; every
    other part keeps its position among the flattened parts: `key` (the only one) or `key0`, `key1`.

        key_labels((TupleType((StringType(16), IntType()), ("comm", "pid")),))   # ['comm', 'pid']
        key_labels((StringType(16), IntType()))                                 # ['key0', 'key1']
    """
    import re

    fields = [name for t in types for name in _field_labels(t, None)]
    labels = ["key" if len(fields) == 1 else f"key{i}" if field is None else ""
              for i, field in enumerate(fields)]
    for i, field in enumerate(fields):
        if field is not None:
            name = "key_" + field if re.fullmatch(_RESERVED_LABEL, field) else field
            while name in labels:
                name = "key_" + name
            labels[i] = name
    return labels


def _field_labels(t: T.Type, path: str | None) -> list[str | None]:
    """The label name of each flattened part of t, reached by `path` (None: by position only)."""
    if not isinstance(t, T.TupleType):
        return [path]
    if t.names:
        return [label for name, e in zip(t.names, t.elements)
                for label in _field_labels(e, name if path is None else f"{path}_{name}")]
    return [label for i, e in enumerate(t.elements)
            for label in _field_labels(e, None if path is None else f"{path}{i}")]


def label_width(t: T.Type) -> int:
    """Label values a key part or value of type t becomes: a tuple's elements, flattened."""
    return sum(label_width(e) for e in t.elements) if isinstance(t, T.TupleType) else 1


def gauge_family(name: str, doc: str, labels: list[str], keyed) -> object:
    from prometheus_client.metrics_core import GaugeMetricFamily
    gauge = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in keyed:
        gauge.add_metric(key, value)
    return gauge
