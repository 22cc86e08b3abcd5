"""The map kind objects without the kernel: layouts, decoding known per-CPU bytes, and the text,
JSON and sort forms of what they decode (the printer and the metrics exporter use these)."""

from __future__ import annotations

import ast
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf import types as T
from pybpf.mapkinds import LhistParams, MapKind, Stats, TSeriesParams, kind_for
from pybpf.mapkinds import tseries
from pybpf.program import MapSpec
from pybpf.uapi.bpf import BpfMapType

I64 = T.IntType()


def q(*ints: int) -> bytes:
    return struct.pack(f"<{len(ints)}q", *ints)


def spec(kind: MapKind, key=(I64,), value=I64, lhist=None, tseries_params=None) -> MapSpec:
    return MapSpec("@m", "AT_m", kind, key, value, lhist, tseries=tseries_params)


def decode(kind: MapKind, keys, raw: bytes, ncpu: int = 2, hide_zero: bool = False, **spec_args):
    return kind_for(kind).entries(spec(kind, **spec_args), keys, raw, ncpu, hide_zero, typed_values=None)


def ordered(kind: MapKind, entries, **spec_args):
    return sorted(entries, key=kind_for(kind).entry_sort_key(spec(kind, **spec_args)))


def test_kind_for_every_map_kind():
    assert [kind_for(k).kind for k in MapKind] == list(MapKind)


# kind, keyed: (BPF map type, key size, value size per CPU, max entries)
LAYOUTS = {
    (MapKind.VALUE, False): (BpfMapType.HASH, 8, 8, 4096),
    (MapKind.COUNT, False): (BpfMapType.PERCPU_ARRAY, 4, 8, 1),
    (MapKind.COUNT, True): (BpfMapType.PERCPU_HASH, 8, 8, 4096),
    (MapKind.SUM, False): (BpfMapType.PERCPU_HASH, 8, 8, 4096),     # sum(0) is not "never summed"
    (MapKind.MIN, False): (BpfMapType.PERCPU_ARRAY, 4, 16, 1),
    (MapKind.MAX, True): (BpfMapType.PERCPU_HASH, 8, 16, 4096),
    (MapKind.AVG, False): (BpfMapType.PERCPU_ARRAY, 4, 16, 1),
    (MapKind.STATS, True): (BpfMapType.PERCPU_HASH, 8, 16, 4096),
    (MapKind.HIST, False): (BpfMapType.PERCPU_ARRAY, 4, 8, 66),
    (MapKind.HIST, True): (BpfMapType.PERCPU_HASH, 16, 8, 4096),    # the key ends in the bucket
    (MapKind.LHIST, False): (BpfMapType.PERCPU_ARRAY, 4, 8, 12),    # 10 buckets and two open ends
    (MapKind.LHIST, True): (BpfMapType.PERCPU_HASH, 16, 8, 4096),
    (MapKind.TSERIES, False): (BpfMapType.PERCPU_ARRAY, 4, 24, 20),  # a bucket per interval
    (MapKind.TSERIES, True): (BpfMapType.PERCPU_HASH, 16, 24, 4096),
}


@pytest.mark.parametrize("kind, keyed", sorted(LAYOUTS, key=lambda k: (k[0].value, k[1])))
def test_layout(kind, keyed):
    s = spec(kind, key=(I64,) if keyed else (), lhist=LhistParams(0, 100, 10),
             tseries_params=TSeriesParams(100_000_000, 20))
    assert (s.bpf_map_type, s.key_size, s.value_size, s.bpf_max_entries) == LAYOUTS[kind, keyed]
    assert s.percpu == kind.is_aggregation


def test_value_size_of_a_plain_value_is_its_slot():
    assert spec(MapKind.VALUE, value=T.StringType(20)).value_size == 24


# --- decoding: values as the kernel lays them out, two CPUs each ------------------------------------

def test_count_and_sum_add_the_cpus():
    raw = q(2, 3) + q(0, 0) + q(-9, 4)
    assert decode(MapKind.COUNT, [(1,), (2,), (3,)], raw) == [((1,), 5), ((2,), 0), ((3,), -5)]
    assert decode(MapKind.SUM, [(1,), (2,), (3,)], raw, hide_zero=True) == [((1,), 5), ((3,), -5)]


def test_min_and_max_skip_the_cpus_that_never_set_a_value():
    raw = q(0, 0, -7, 1) + q(0, 0, 0, 0) + q(3, 1, 9, 1)
    keys = [(1,), (2,), (3,)]
    assert decode(MapKind.MIN, keys, raw) == [((1,), -7), ((3,), 3)]
    assert decode(MapKind.MAX, keys, raw) == [((1,), -7), ((3,), 9)]


def test_avg_and_stats_sum_counts_and_totals():
    raw = q(2, 40, 1, -23) + q(0, 0, 0, 0)
    assert decode(MapKind.AVG, [(), ()], raw) == [((), Stats(3, 17)), ((), Stats(0, 0))]
    assert decode(MapKind.STATS, [(), ()], raw, hide_zero=True) == [((), Stats(3, 17))]


def test_stats_average_truncates_toward_zero():
    assert [Stats(3, 17).average, Stats(2, -5).average, Stats(0, 0).average] == [5, -2, 0]


def test_hist_groups_buckets_by_key():
    keys = [(7, 3), (8, 0), (7, 5)]                     # user key, then the bucket index
    raw = q(1, 2) + q(0, 6) + struct.pack("<2Q", 1 << 63, 0)
    assert decode(MapKind.HIST, keys, raw) == [((7,), {3: 3, 5: 1 << 63}), ((8,), {0: 6})]


def test_scalar_hist_array_without_counts_is_hidden_unless_zeroed():
    keys = [(0,), (1,), (2,)]                            # an array's keys: the buckets
    assert decode(MapKind.LHIST, keys, bytes(48), lhist=LhistParams(0, 1, 1), hide_zero=True) == []
    assert decode(MapKind.LHIST, keys, bytes(48), lhist=LhistParams(0, 1, 1)) == [((), {0: 0, 1: 0, 2: 0})]


def test_value_maps_decode_through_the_run_sides_typed_values():
    asked = []

    def typed_values(t, raw, size):
        asked.append((t, raw, size))
        return ["bash", "sshd"]
    s = spec(MapKind.VALUE, value=T.StringType(16))
    assert kind_for(MapKind.VALUE).entries(s, [(1,), (2,)], b"x" * 32, 1, False, typed_values) == [
        ((1,), "bash"), ((2,), "sshd")]
    assert asked == [(T.StringType(16), b"x" * 32, 16)]


# --- printed forms -----------------------------------------------------------------------------------

def text(kind: MapKind, value, **spec_args) -> str:
    return kind_for(kind).text_value(spec(kind, **spec_args), str)(value)


def json_text(kind: MapKind, value, **spec_args) -> str:
    return kind_for(kind).json_value(spec(kind, **spec_args), str)(value)


def test_stats_and_avg_forms():
    raw = q(2, 40, 1, 23)
    (_, value), = decode(MapKind.STATS, [()], raw)
    assert text(MapKind.STATS, value) == "count 3, average 21, total 63"
    assert json.loads(json_text(MapKind.STATS, value)) == {"count": 3, "average": 21, "total": 63}
    assert text(MapKind.AVG, value) == json_text(MapKind.AVG, value) == "21"
    assert (kind_for(MapKind.AVG).json_type, kind_for(MapKind.AVG).text_trailer) == ("stats", "\n")


def test_hist_text_from_the_lowest_to_the_highest_used_bucket():
    (_, counts), = decode(MapKind.HIST, [(1,), (3,), (9,)], q(1, 0, 1, 1, 0, 0))
    assert text(MapKind.HIST, counts) == (
        "\n"
        "[0]                    1 |" + "@" * 26 + " " * 26 + "|\n"
        "[1]                    0 |" + " " * 52 + "|\n"
        "[2, 4)                 2 |" + "@" * 52 + "|\n")
    assert text(MapKind.HIST, {9: 0}) == "\n"


def test_hist_labels_and_json_ranges():
    layout = kind_for(MapKind.HIST).layout(spec(MapKind.HIST))
    assert [layout.label(i) for i in (0, 1, 2, 3, 12, 22, 65)] == [
        "(..., 0)", "[0]", "[1]", "[2, 4)", "[1K, 2K)", "[1M, 2M)", "[8E, 16E)"]
    assert json.loads(json_text(MapKind.HIST, {0: 1, 3: 2})) == [
        {"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 0}, {"min": 1, "max": 1, "count": 0},
        {"min": 2, "max": 3, "count": 2}]


def test_lhist_labels_open_ends_and_suffixes():
    params = LhistParams(0, 100, 10)
    layout = kind_for(MapKind.LHIST).layout(spec(MapKind.LHIST, lhist=params))
    assert [layout.label(i) for i in (0, 1, 3, 11)] == ["(..., 0)", "[0, 10)", "[20, 30)", "[100, ...)"]
    assert json.loads(json_text(MapKind.LHIST, {0: 1, 11: 2}, lhist=params))[::11] == [
        {"max": -1, "count": 1}, {"min": 100, "count": 2}]
    kilo = kind_for(MapKind.LHIST).layout(spec(MapKind.LHIST, lhist=LhistParams(0, 4 << 20, 1 << 20)))
    assert [kilo.label(i) for i in (1, 2, 5)] == ["[0, 1M)", "[1M, 2M)", "[4M, ...)"]
    assert kind_for(MapKind.LHIST).layout(spec(MapKind.LHIST, lhist=LhistParams(0, 2048, 512))).label(3) \
        == "[1024, 1536)"


def test_sort_orders():
    assert ordered(MapKind.COUNT, [((1,), 5), ((2,), -1)]) == [((2,), -1), ((1,), 5)]
    assert ordered(MapKind.AVG, [((1,), Stats(1, 9)), ((2,), Stats(4, 8))]) == [
        ((2,), Stats(4, 8)), ((1,), Stats(1, 9))]
    assert ordered(MapKind.HIST, [((1,), {5: 3}), ((2,), {0: 1, 9: 1})]) == [
        ((2,), {0: 1, 9: 1}), ((1,), {5: 3})]
    assert kind_for(MapKind.VALUE).entry_sort_key(spec(MapKind.VALUE, value=T.StringType())) is None
    assert ordered(MapKind.VALUE, [((1,), 5), ((2,), -1)]) == [((2,), -1), ((1,), 5)]


@pytest.mark.parametrize("kind, value, plain", [
    (MapKind.COUNT, I64, int), (MapKind.MAX, I64, int), (MapKind.VALUE, I64, int),
    (MapKind.VALUE, T.StringType(), str), (MapKind.VALUE, T.ProbeType(), str),
    (MapKind.VALUE, T.TupleType((I64, I64)), None), (MapKind.STATS, I64, None), (MapKind.HIST, I64, None)])
def test_plain_types(kind, value, plain):
    assert kind_for(kind).plain_type(spec(kind, value=value)) is plain


def test_importing_the_kinds_loads_neither_side_nor_llvmlite_nor_prometheus_client():
    code = ("import sys, pybpf.mapkinds, pybpf.program; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('llvmlite', 'prometheus_client', 'lark') or m.startswith(("
            "'pybpf.runtime', 'pybpf.backend', 'pybpf.semantic', 'pybpf.probes', 'pybpf.parser', "
            "'pybpf.resources'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def test_the_kinds_import_no_other_pybpf_module_anywhere_in_their_code():
    # Lazy imports count too: the package sits below both sides, so neither may appear; the
    # kernel's constants (pybpf.uapi, a leaf) are below both too (tseries reads the TAI clock).
    imported = set()
    for path in Path(kind_for.__code__.co_filename).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "pybpf":
                imported |= {f"pybpf.{a.name}" for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module.startswith("pybpf"):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("pybpf")}
    # pybpf.records (which pybpf.types builds on): NamedTuple without importing typing
    assert {m for m in imported if not m.startswith("pybpf.mapkinds")} <= {"pybpf.types", "pybpf.records",
                                                                          "pybpf.uapi.bpf"}


# --- tseries ----------------------------------------------------------------------------------------

def slot(value: int, meta: int, epoch: int) -> bytes:
    return struct.pack("<qQQ", value, meta, epoch)


@pytest.mark.parametrize("agg, expected", [("", 30), ("sum", 50), ("avg", 25), ("min", 20), ("max", 30)])
def test_tseries_merges_the_cpus_of_a_buckets_latest_epoch(agg, expected):
    # bucket 2 of key 1: CPU 0 wrote 20 at epoch 7 (meta: time 100, or a count of 1), CPU 1 wrote
    # 30 later in epoch 7 (time 200); CPU 2 holds a stale epoch 3, CPU 3 never wrote (epoch 0).
    count = agg == "avg"
    raw = slot(20, 1 if count else 100, 7) + slot(30, 1 if count else 200, 7) + slot(99, 5, 3) + \
        slot(0, 0, 0)
    params = TSeriesParams(10, 4, agg)
    assert decode(MapKind.TSERIES, [(1, 2)], raw, ncpu=4, tseries_params=params) == \
        [((1,), tseries.Series(7, ((7, expected),)))]


def test_tseries_shows_every_key_over_the_window_up_to_the_latest_epoch():
    # window of 3 epochs ending at 12 (key 2's newest): key 1 from its first epoch in the window
    # (its epoch 9 is too old), with its missing ones as None; keys sort by their newest epoch
    params = TSeriesParams(10, 3, "")
    keys = [(1, 0), (1, 1), (2, 0)]
    raw = slot(5, 1, 9) + slot(6, 1, 10) + slot(7, 1, 12)
    entries = decode(MapKind.TSERIES, keys, raw, ncpu=1, tseries_params=params)
    assert ordered(MapKind.TSERIES, entries, tseries_params=params) == [
        ((1,), tseries.Series(10, ((10, 6), (11, None), (12, None)))),
        ((2,), tseries.Series(12, ((12, 7),)))]


ZIGZAG = """\
             -5                                                  5
hh:mm:ss.ms  |___________________________________________________|
10:39:49.300 *                         .                         | -5
10:39:49.400 |    *                    .                         | -4
10:39:49.500 |         *               .                         | -3
10:39:49.600 |              *          .                         | -2
10:39:49.700 |                   *     .                         | -1
10:39:49.800 |                         *                         | 0
10:39:49.900 |                         .    *                    | 1
10:39:50.000 |                         .         *               | 2
10:39:50.100 |                         .              *          | 3
10:39:50.200 |                         .                   *     | 4
10:39:50.300 |                         .                         * 5
10:39:50.400 |                         .                   *     | 4
10:39:50.500 |                         .              *          | 3
10:39:50.600 |                         .         *               | 2
10:39:50.700 |                         .    *                    | 1
10:39:50.800 |                         *                         | 0
10:39:50.900 |                   *     .                         | -1
10:39:51.000 |              *          .                         | -2
10:39:51.100 |         *               .                         | -3
10:39:51.200 |    *                    .                         | -4
             v___________________________________________________v
             -5                                                  5
"""


@pytest.fixture
def utc_tai(monkeypatch):
    """Local time UTC and TAI = wall clock, so an interval's printed time is its epoch's."""
    monkeypatch.setenv("TZ", "UTC")
    __import__("time").tzset()
    monkeypatch.setattr(tseries, "_wall_clock", lambda: lambda ns: ns)
    yield
    monkeypatch.undo()
    __import__("time").tzset()


def test_tseries_graph_is_bpftraces(utc_tai):
    # bpftrace 0.26's own example (stdlib.md, tseries "Example two": a zigzag every 100ms)
    values = [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, -1, -2, -3, -4]
    first = (10 * 3600 + 39 * 60 + 49) * 10 + 3          # 10:39:49.300 in 100ms epochs
    series = tseries.Series(first + 19, tuple((first + i, v) for i, v in enumerate(values)))
    render = kind_for(MapKind.TSERIES).text_value(spec(MapKind.TSERIES, (), tseries_params=TSeriesParams(
        100_000_000, 20)), str)
    assert render(series) == "\n" + ZIGZAG


def test_tseries_graph_flat_line_missing_intervals_and_seconds(utc_tai):
    # one value: a scale one below and above it; an interval without a value is "-"; whole
    # seconds print without a fraction
    series = tseries.Series(2, ((1, 9), (2, None)))
    text = kind_for(MapKind.TSERIES).text_value(spec(MapKind.TSERIES, (), tseries_params=TSeriesParams(
        1_000_000_000, 5)), str)(series)
    assert text.splitlines()[1:4] == [
        "         8                                                  10",
        "hh:mm:ss |___________________________________________________|",
        "00:00:01 |                         *                         | 9"]
    assert text.splitlines()[4] == "00:00:02 |                                                   | -"


def test_tseries_json_skips_missing_intervals(utc_tai):
    series = tseries.Series(2, ((1, 9), (2, None)))
    render = kind_for(MapKind.TSERIES).json_value(spec(MapKind.TSERIES, (), tseries_params=TSeriesParams(
        100_000_000, 5)), str)
    assert render(series) == '[{"interval_start":"1970-01-01T00:00:00.100000000","value":9}]'
