"""`@m[k] = v`: a plain value in a HASH map (not per-CPU), the value's slot as stored.

    VALUE.value_size(spec)            # slot_size(spec.value): 8 for an int, round_up(N, 8) for string[N]
    VALUE.entries(spec, [(1,)], raw, 1, False, typed_values)    # [((1,), 'bash')]

Integer values print and sort like counts; strings, probes and tuples print by key; in metrics an
integer map is a gauge and any other an info metric whose labels hold the value.
"""

from __future__ import annotations

from pybpf import types as T
from pybpf.mapkinds.base import BY_VALUE, Kind, MapKind, gauge_family, label_names, label_width


class Value(Kind):
    kind = MapKind.VALUE

    def value_size(self, spec) -> int:
        return T.slot_size(spec.value)

    def loop_type(self, value: T.Type) -> T.Type | None:
        return value

    def entries(self, spec, keys, values_raw, ncpu, hide_zero, typed_values):
        return list(zip(keys, typed_values(spec.value, values_raw, self.value_size(spec))))

    def plain_type(self, spec) -> type | None:
        if type(spec.value) is T.IntType and not spec.value.boolean:
            return int
        if isinstance(spec.value, (T.StringType, T.ProbeType)):
            return str
        return None

    def entry_sort_key(self, spec):
        return BY_VALUE if isinstance(spec.value, T.IntType) else None

    def metric_families(self, spec, name, doc, labels, keyed, label_values):
        if isinstance(spec.value, T.IntType):
            return [gauge_family(name, doc, labels, keyed)]
        from prometheus_client.metrics_core import InfoMetricFamily
        info = InfoMetricFamily(name, doc, labels=labels)
        value_labels = label_names("value", label_width(spec.value))
        for key, value in keyed:
            info.add_metric(key, dict(zip(value_labels, label_values((value,)))))
        return [info]


VALUE = Value()
