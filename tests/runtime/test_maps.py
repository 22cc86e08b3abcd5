"""Reading user maps of every kind from real kernel maps, values written per CPU from user space."""

import errno
import os
import struct
import time

import pytest

from pybpf import types as T
from pybpf.cpus import cpu_slots
from pybpf.mapkinds import LhistParams, Stats
from pybpf.program import MapDef, MapKind, MapSpec
from pybpf.runtime import maps
from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import create_map
from pybpf.uapi.bpf import BpfMapType

pytestmark = pytest.mark.kernel

I64 = T.IntType(8, True)
NCPU = cpu_slots()


@pytest.fixture
def open_map():
    fds = []

    def create(spec: MapSpec) -> int:
        fds.append(create_map(spec.symbol, MapDef(spec.bpf_map_type, spec.key_size, spec.value_size,
                                                  spec.max_entries)))
        return fds[-1]
    yield create
    for fd in fds:
        os.close(fd)


def per_cpu(*values: bytes) -> bytes:
    """One value per possible CPU (CPUs not given hold zeros), each slot 8-byte aligned."""
    stride = (len(values[0]) + 7) & ~7
    return b"".join(v.ljust(stride, b"\0") for v in values).ljust(stride * NCPU, b"\0")


def q(*ints: int) -> bytes:
    return struct.pack(f"<{len(ints)}q", *ints)


def text(s: str, size: int) -> bytes:
    return s.encode().ljust(size, b"\0")


def test_possible_cpus_counts_offline_cpus_too():
    with open("/sys/devices/system/cpu/possible") as f:
        assert cpu_slots() == int(f.read().strip().split("-")[-1].split(",")[-1]) + 1


def test_lookup_update_delete_and_next_key(open_map):
    fd = open_map(MapSpec("@v", "rt_v", MapKind.VALUE, (I64,), I64))
    assert maps.lookup(fd, q(1), 8) is None
    maps.update(fd, q(1), q(10))
    maps.update(fd, q(2), q(20))
    assert maps.lookup(fd, q(1), 8) == q(10)
    assert sorted(maps.keys(fd, 8)) == [q(1), q(2)]
    assert maps.delete(fd, q(1)) is True
    assert maps.delete(fd, q(1)) is False
    assert maps.get_next_key(fd, None, 8) == q(2)
    assert maps.get_next_key(fd, q(2), 8) is None


def test_value_map_with_string_and_tuple_keys(open_map):
    spec = MapSpec("@v", "rt_v", MapKind.VALUE, (T.StringType(16), I64), T.StringType(16))
    fd = open_map(spec)
    maps.update(fd, text("bash", 16) + q(-3), text("hello", 16))
    assert maps.read_user_map(fd, spec) == [(("bash", -3), "hello")]


def test_scalar_count_is_summed_over_cpus(open_map):
    spec = MapSpec("@c", "rt_c", MapKind.COUNT, (), I64)
    fd = open_map(spec)
    maps.update(fd, q(0), per_cpu(q(5), q(-2)) if NCPU > 1 else per_cpu(q(3)))
    assert maps.read_user_map(fd, spec) == [((), 3)]


def test_min_max_ignore_cpus_that_never_set_a_value(open_map):
    spec = MapSpec("@m", "rt_m", MapKind.MIN, (I64,), I64)
    fd = open_map(spec)
    maps.update(fd, q(1), per_cpu(q(0, 0), q(-7, 1)))     # CPU 0 unset: its 0 is not a minimum
    maps.update(fd, q(2), per_cpu(q(0, 0)))               # set nowhere: not printed
    expected = [((1,), -7)] if NCPU > 1 else []
    assert maps.read_user_map(fd, spec) == expected
    spec_max = MapSpec("@M", "rt_M", MapKind.MAX, (I64,), I64)
    fd = open_map(spec_max)
    maps.update(fd, q(1), per_cpu(q(-9, 1), q(-4, 1)))
    assert maps.read_user_map(fd, spec_max) == [((1,), -4 if NCPU > 1 else -9)]


def test_stats_sum_counts_and_totals(open_map):
    spec = MapSpec("@s", "rt_s", MapKind.STATS, (), I64)
    fd = open_map(spec)
    maps.update(fd, q(0), per_cpu(q(2, 40), q(1, 23)))
    assert maps.read_user_map(fd, spec) == [((), Stats(3, 63) if NCPU > 1 else Stats(2, 40))]


def test_hist_buckets_grouped_by_user_key(open_map):
    spec = MapSpec("@h", "rt_h", MapKind.LHIST, (T.StringType(8),), I64, LhistParams(0, 100, 10))
    fd = open_map(spec)
    maps.update(fd, text("a", 8) + q(0), per_cpu(q(1), q(2)))
    maps.update(fd, text("a", 8) + q(3), per_cpu(q(4)))
    maps.update(fd, text("b", 8) + q(1), per_cpu(q(1)))
    hists = dict(maps.read_user_map(fd, spec))
    assert hists == {("a",): {0: 1 + (2 if NCPU > 1 else 0), 3: 4}, ("b",): {1: 1}}


def test_clear_and_zero(open_map):
    spec = MapSpec("@c", "rt_c", MapKind.COUNT, (I64,), I64)
    fd = open_map(spec)
    for k in range(10):
        maps.update(fd, q(k), per_cpu(q(k + 1)))
    maps.zero_map(fd, spec)
    assert sorted(maps.read_user_map(fd, spec)) == [((k,), 0) for k in range(10)]
    maps.clear_map(fd, spec)
    assert maps.read_user_map(fd, spec) == []


def test_read_lost_sums_the_percpu_array():
    fd = create_map("rt_lost", MapDef(BpfMapType.PERCPU_ARRAY, 4, 8, 1))
    try:
        assert maps.read_lost(fd) == 0
        maps.update(fd, bytes(4), per_cpu(q(2), q(5)))
        assert maps.read_lost(fd) == (7 if NCPU > 1 else 2)
    finally:
        os.close(fd)


def fill(fd: int, n: int) -> None:
    for k in range(n):
        maps.update(fd, q(k), per_cpu(q(k)))


def test_batch_reads_every_key_across_chunks(open_map, monkeypatch):
    spec = MapSpec("@c", "rt_c", MapKind.COUNT, (I64,), I64, max_entries=3000)
    fd = open_map(spec)
    fill(fd, 2500)
    monkeypatch.setattr(maps, "BATCH_CHUNK", 64)     # many calls, ending with ENOENT plus entries
    assert sorted(maps.read_user_map(fd, spec)) == [((k,), k) for k in range(2500)]


def test_falls_back_to_get_next_key_without_batch(open_map, monkeypatch):
    spec = MapSpec("@c", "rt_c", MapKind.COUNT, (I64,), I64)
    fd = open_map(spec)
    fill(fd, 100)

    def unsupported(*args):
        raise BpfError("MAP_LOOKUP_BATCH", errno.EINVAL)
    monkeypatch.setattr(maps, "_items_batched", unsupported)
    assert sorted(maps.read_user_map(fd, spec)) == [((k,), k) for k in range(100)]


def test_reading_10000_keys_takes_a_few_milliseconds(open_map):
    spec = MapSpec("@c", "rt_c", MapKind.COUNT, (T.StringType(16),), I64, max_entries=10000)
    fd = open_map(spec)
    for k in range(10000):
        maps.update(fd, text(f"k{k}", 16), per_cpu(q(1)))
    started = time.perf_counter()
    entries = maps.read_user_map(fd, spec)
    elapsed = time.perf_counter() - started
    assert len(entries) == 10000
    assert elapsed < 0.5, f"{elapsed * 1000:.0f} ms"


def test_integer_keys_of_every_size_and_sign(open_map):
    # Keys of integers only are decoded with one struct per map: each part in its 8-byte slot.
    key = (T.IntType(4, False), T.IntType(2, True), T.IntType(1, True), I64, T.IntType(8, False))
    spec = MapSpec("@c", "rt_c", MapKind.COUNT, key, I64)
    fd = open_map(spec)

    def slots(u32, i16, i8, i64, u64):
        return struct.pack("<I4xh6xb7xqQ", u32, i16, i8, i64, u64)
    maps.update(fd, slots(4000000000, -2, -128, -5, (1 << 64) - 1), per_cpu(q(3), q(4)))
    maps.update(fd, slots(7, 300, 127, 1 << 62, 0), per_cpu(q(-1)))
    assert sorted(maps.read_user_map(fd, spec)) == [
        ((7, 300, 127, 1 << 62, 0), -1),
        ((4000000000, -2, -128, -5, (1 << 64) - 1), 7 if NCPU > 1 else 3)]


def test_counts_are_summed_over_cpus_for_every_key(open_map):
    spec = MapSpec("@c", "rt_c", MapKind.SUM, (I64,), I64, max_entries=5000)
    fd = open_map(spec)
    for k in range(5000):
        maps.update(fd, q(k - 2500), q(*[k * 10 + cpu for cpu in range(NCPU)]))
    assert sorted(maps.read_user_map(fd, spec)) == sorted(
        ((k - 2500,), sum(k * 10 + cpu for cpu in range(NCPU))) for k in range(5000))


def test_scalar_sum_and_value_maps_hold_one_zero_key(open_map):
    spec = MapSpec("@s", "rt_s", MapKind.SUM, (), I64)
    fd = open_map(spec)
    maps.update(fd, q(0), per_cpu(q(-9), q(2)))
    assert maps.read_user_map(fd, spec) == [((), -7 if NCPU > 1 else -9)]
    spec = MapSpec("@v", "rt_v", MapKind.VALUE, (), T.IntType(4, False))
    fd = open_map(spec)
    maps.update(fd, q(0), struct.pack("<I4x", 4000000000))
    assert maps.read_user_map(fd, spec) == [((), 4000000000)]


def test_value_maps_with_integer_and_tuple_values(open_map):
    spec = MapSpec("@v", "rt_v", MapKind.VALUE, (T.IntType(4, True),), I64)
    fd = open_map(spec)
    maps.update(fd, struct.pack("<i4x", -3), q(-30))
    maps.update(fd, struct.pack("<i4x", 3), q(30))
    assert sorted(maps.read_user_map(fd, spec)) == [((-3,), -30), ((3,), 30)]
    pair = T.TupleType((I64, T.StringType(8)))
    spec = MapSpec("@t", "rt_t", MapKind.VALUE, (pair,), pair)
    fd = open_map(spec)
    maps.update(fd, q(-1) + text("k", 8), q(2) + text("v", 8))
    assert maps.read_user_map(fd, spec) == [(((-1, "k"),), (2, "v"))]


def test_avg_and_hist_with_integer_keys_sum_every_cpu(open_map):
    spec = MapSpec("@a", "rt_a", MapKind.AVG, (I64,), I64)
    fd = open_map(spec)
    maps.update(fd, q(-4), per_cpu(q(2, 40), q(1, -23)))
    assert maps.read_user_map(fd, spec) == [((-4,), Stats(3, 17) if NCPU > 1 else Stats(2, 40))]
    spec = MapSpec("@h", "rt_h", MapKind.HIST, (I64, T.IntType(4, False)), I64)
    fd = open_map(spec)
    maps.update(fd, q(-1) + struct.pack("<I4x", 9) + q(3), per_cpu(q(1), q(2)))
    maps.update(fd, q(-1) + struct.pack("<I4x", 9) + q(5), per_cpu(q(4)))
    maps.update(fd, q(2) + struct.pack("<I4x", 0) + q(0), per_cpu(q(6)))
    hists = dict(maps.read_user_map(fd, spec))
    assert hists == {(-1, 9): {3: 1 + (2 if NCPU > 1 else 0), 5: 4}, (2, 0): {0: 6}}


def test_scalar_hist_array_hides_an_unused_map(open_map):
    spec = MapSpec("@h", "rt_h", MapKind.HIST, (), I64)
    assert spec.is_array
    fd = open_map(spec)
    assert maps.read_user_map(fd, spec) == []
    (key, counts), = maps.read_user_map(fd, spec, keep_zero=True)    # zero()ed: every bucket, at 0
    assert key == () and counts == dict.fromkeys(range(len(counts)), 0) and len(counts) > 60
    maps.update(fd, struct.pack("<I", 4), per_cpu(q(2), q(3)))
    counts = dict(maps.read_user_map(fd, spec))[()]
    assert counts[4] == (5 if NCPU > 1 else 2) and sum(counts.values()) == counts[4]
