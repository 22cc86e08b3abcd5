"""The map kinds' update and bucket lowering, run: each is JIT-compiled for this host through
FunctionBuilder's own load/store code, applied to a value in memory, and the result decoded by
the same kind, so lowering and reading cannot disagree on the layout."""

from __future__ import annotations

import ctypes

import pytest

from pybpf import types as T
from pybpf.backend.codegen import FunctionBuilder
from pybpf.backend.irutil import I64, PTR, ir
from pybpf.mapkinds import LhistParams, MapKind, Stats, TSeriesParams, kind_for
from pybpf.mapkinds.tseries import Series
from pybpf.program import MapSpec

llvm = pytest.importorskip("llvmlite.binding")

VALUES = [5, -3, 0, 12, 7, -40, 1 << 40]


class HostBuilder:
    """What the kinds' lowering uses of a FunctionBuilder, over a function of this host."""
    gep, store64, load64 = FunctionBuilder.gep, FunctionBuilder.store64, FunctionBuilder.load64
    divide = FunctionBuilder.divide
    constant = staticmethod(FunctionBuilder.constant)
    upper_bound = staticmethod(FunctionBuilder.upper_bound)

    def __init__(self, builder: ir.IRBuilder):
        self.b = builder


def jit(define):
    """define(module) adds functions; returns a function name -> address lookup. The engine is
    kept alive by the returned closure."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = ir.Module("kinds")
    define(module)
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    engine = llvm.create_mcjit_compiler(parsed, llvm.Target.from_default_triple().create_target_machine())
    engine.finalize_object()
    return lambda name: engine.get_function_address(name)


def function(module, name: str, args, body, returns=None) -> None:
    """A function whose body is body(builder, *its arguments); it returns what body returns when
    `returns` (an IR type) is given."""
    fn = ir.Function(module, ir.FunctionType(returns or ir.VoidType(), args), name)
    builder = ir.IRBuilder(fn.append_basic_block())
    result = body(HostBuilder(builder), *fn.args)
    if returns:
        builder.ret(result)
    else:
        builder.ret_void()


def updates(kind: MapKind):
    """(initial(address, v), update(address, v)) of the kind as Python callables, and the lookup
    that keeps their engine alive."""
    k = kind_for(kind)
    address = jit(lambda m: (function(m, "initial", [PTR, I64], k.lower_initial),
                             function(m, "update", [PTR, I64], k.lower_update)))
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)
    return prototype(address("initial")), prototype(address("update")), address


@pytest.mark.parametrize("kind, expected", [
    (MapKind.COUNT, len(VALUES)), (MapKind.SUM, sum(VALUES)), (MapKind.MIN, min(VALUES)),
    (MapKind.MAX, max(VALUES)), (MapKind.AVG, Stats(len(VALUES), sum(VALUES))),
    (MapKind.STATS, Stats(len(VALUES), sum(VALUES)))])
def test_updates_decode_to_the_aggregate(kind, expected):
    initial, update, _engine = updates(kind)
    spec = MapSpec("@m", "AT_m", kind, (T.IntType(),), T.IntType())
    value = ctypes.create_string_buffer(spec.value_size)
    initial(ctypes.addressof(value), VALUES[0])
    for v in VALUES[1:]:
        update(ctypes.addressof(value), v)
    assert kind_for(kind).entries(spec, [(1,)], value.raw, 1, False, None) == [((1,), expected)]


@pytest.mark.parametrize("kind", [MapKind.MIN, MapKind.MAX])
def test_an_unset_array_element_takes_the_first_value(kind):
    # A scalar min/max is an array element, zeroed and never inserted: its 0 is not a value.
    _, update, _engine = updates(kind)
    value = ctypes.create_string_buffer(16)
    first = 9 if kind is MapKind.MIN else -9          # worse than the zero already there
    update(ctypes.addressof(value), first)
    spec = MapSpec("@m", "AT_m", kind, (), T.IntType())
    assert kind_for(kind).entries(spec, [()], value.raw, 1, True, None) == [((), first)]


@pytest.mark.parametrize("kind, lhist, bits", [
    (MapKind.HIST, None, 0), (MapKind.HIST, None, 1), (MapKind.HIST, None, 3), (MapKind.HIST, None, 5),
    (MapKind.LHIST, LhistParams(0, 100, 10), 0), (MapKind.LHIST, LhistParams(-50, 150, 25), 0),
    (MapKind.LHIST, LhistParams(0, 1 << 30, 1 << 20), 0)])
def test_the_lowered_bucket_is_the_one_whose_label_holds_the_value(kind, lhist, bits):
    k, spec = kind_for(kind), MapSpec("@h", "AT_h", kind, (), T.IntType(), lhist, hist_bits=bits)
    address = jit(lambda m: function(m, "bucket", [I64], lambda fb, v: k.lower_bucket(fb, spec, v),
                                     returns=I64))
    bucket = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address("bucket"))
    bounds = k.layout(spec).bounds
    edges = [-(1 << 63), -51, -50, -1, 0, 1, 2, 3, 9, 10, 99, 100, 149, 150, 1023, 1024, 1 << 20,
             (1 << 30) - 1, 1 << 30, (1 << 63) - 1] + list(range(4, 200, 7))
    for v in edges:
        index = bucket(v)
        lo, hi = bounds(index)
        assert 0 <= index < k.array_entries(spec)
        assert (lo is None or lo <= v) and (hi is None or v < hi), (v, index, lo, hi)


@pytest.mark.parametrize("kind, lhist, bits, mask, compares", [
    (MapKind.HIST, None, 0, 0xFFFF, 5), (MapKind.HIST, None, 2, 0xFF, 4),
    (MapKind.LHIST, LhistParams(0, 256, 16), 0, 0xFF, 0), (MapKind.LHIST, LhistParams(0, 128, 16), 0, 0xFF, 1),
    (MapKind.LHIST, LhistParams(16, 256, 16), 0, 0xFF, 1)])
def test_a_masked_value_skips_the_checks_its_bound_rules_out(kind, lhist, bits, mask, compares):
    """hist(v & mask), lhist(v & mask, ...): the checks a masked value cannot fail are left out
    (as clang -O2 leaves them out of the same C), and the bucket is still the right one."""
    k, spec = kind_for(kind), MapSpec("@h", "AT_h", kind, (), T.IntType(), lhist, hist_bits=bits)
    module_text = []

    def define(m):
        function(m, "bucket", [I64], lambda fb, v: k.lower_bucket(fb, spec, fb.b.and_(v, fb.constant(mask))),
                 returns=I64)
        module_text.append(str(m))

    address = jit(define)
    assert module_text[0].count("icmp") == compares
    bucket = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(address("bucket"))
    bounds = k.layout(spec).bounds
    for v in [-1, 0, 1, 7, 8, 16, 127, 128, 255, 256, 0x1234, 0xFFFF, 1 << 40] + list(range(0, 300, 7)):
        lo, hi = bounds(bucket(v))
        assert (lo is None or lo <= v & mask) and (hi is None or v & mask < hi), (v, lo, hi)


# Per-CPU values of one key as (value, set) pairs for min/max, where CPU 1 never set one.
PER_CPU = {MapKind.COUNT: [(3,), (0,), (5,)], MapKind.SUM: [(-7,), (0,), (12,)],
           MapKind.MIN: [(4, 1), (-99, 0), (-2, 1)], MapKind.MAX: [(4, 1), (99, 0), (-2, 1)],
           MapKind.AVG: [(2, 9), (0, 0), (3, -30)]}


@pytest.mark.parametrize("kind", list(PER_CPU))
def test_merging_the_cpus_reads_what_user_space_prints(kind):
    # A for-loop reads a per-CPU value as the CPUs' values merged (lower_merge into a zeroed
    # total, then lower_read): the number the map prints, for avg its printed average.
    k = kind_for(kind)
    spec = MapSpec("@m", "AT_m", kind, (T.IntType(),), T.IntType())
    address = jit(lambda m: (function(m, "merge", [PTR, PTR], k.lower_merge),
                             function(m, "read", [PTR], k.lower_read, returns=I64)))
    merge = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(address("merge"))
    read = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)(address("read"))
    total = ctypes.create_string_buffer(spec.value_size)
    raw = b""
    for fields in PER_CPU[kind]:
        one = b"".join(v.to_bytes(8, "little", signed=True) for v in fields)
        raw += one
        cpu = ctypes.create_string_buffer(one, len(one))
        merge(ctypes.addressof(total), ctypes.addressof(cpu))
    [(_, printed)] = k.entries(spec, [(1,)], raw, len(PER_CPU[kind]), False, None)
    assert read(ctypes.addressof(total)) == (printed.average if kind is MapKind.AVG else printed)


@pytest.mark.parametrize("agg, expected", [
    ("", VALUES[-1]), ("sum", sum(VALUES)), ("min", min(VALUES)), ("max", max(VALUES)),
    ("avg", int(sum(VALUES) / len(VALUES)))])
def test_tseries_folds_one_interval_and_starts_the_next_afresh(agg, expected):
    """The update with its operand (value, TAI time, epoch, params) as the function's arguments:
    within epoch 7 the values fold by `agg`; epoch 11, the same bucket (11 % 4), restarts it."""
    k, params = kind_for(MapKind.TSERIES), TSeriesParams(100, 4, agg)

    def define(m):
        for name, lower in (("initial", k.lower_initial), ("update", k.lower_update)):
            function(m, name, [PTR, I64, I64, I64],
                     lambda b, ptr, v, now, epoch, lower=lower: lower(b, ptr, (v, now, epoch, params)))
    address = jit(define)
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
    initial, update = prototype(address("initial")), prototype(address("update"))
    spec = MapSpec("@m", "AT_m", MapKind.TSERIES, (T.IntType(),), T.IntType(), tseries=params)
    value = ctypes.create_string_buffer(spec.value_size)
    initial(ctypes.addressof(value), VALUES[0], 1000, 7)
    for now, v in enumerate(VALUES[1:], 1001):
        update(ctypes.addressof(value), v, now, 7)
    assert k.entries(spec, [(1, 3)], value.raw, 1, False, None) == \
        [((1,), Series(7, ((7, expected),)))]
    update(ctypes.addressof(value), 9, 2000, 11)
    assert k.entries(spec, [(1, 3)], value.raw, 1, False, None) == [((1,), Series(11, ((11, 9),)))]
