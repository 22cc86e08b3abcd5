"""Program structure of bpftrace's language: kernel enumerators as constants, probe spellings,
config blocks, macros and C definitions. Each error is checked in its exact rendering."""

import os

import pytest

from pybpf import types as T
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError

needs_btf = pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"),
                               reason="no kernel BTF")


def error_of(source: str) -> str:
    with pytest.raises(CompileError) as info:
        compile_to_ir(source)
    return str(info.value)


@needs_btf
def test_kernel_enumerator_is_a_constant():
    _, checked, _ = compile_to_ir("BEGIN { @r = SKB_DROP_REASON_NOT_SPECIFIED; @m = BPF_MAP_TYPE_HASH; }")
    assert checked.maps["@r"].value == T.IntType(8, False)
    from pybpf.btf import vmlinux
    names = {n.name: v for n, v in checked.constants.items()}
    assert names == {"SKB_DROP_REASON_NOT_SPECIFIED":
                     vmlinux().enumerator("SKB_DROP_REASON_NOT_SPECIFIED")[1].value,
                     "BPF_MAP_TYPE_HASH": 1}


@needs_btf
def test_unknown_identifier_is_no_enumerator():
    assert error_of("BEGIN { @x = NOT_AN_ENUMERATOR; }") == (
        "stdin:1:14-31: ERROR: Unknown identifier: 'NOT_AN_ENUMERATOR'\n"
        "BEGIN { @x = NOT_AN_ENUMERATOR; }\n"
        "             ~~~~~~~~~~~~~~~~~")


# bpftrace 0.26's spellings of a timer: UNIT:N, N<UNIT>, a bare N in ns; each becomes UNIT:N.
@pytest.mark.parametrize("spec, target, period_ns", [
    ("interval:s:1", "s:1", 1_000_000_000),
    ("interval:1s", "s:1", 1_000_000_000),
    ("i:100ms", "ms:100", 100_000_000),
    ("interval:1_000us", "us:1000", 1_000_000),
    ("interval:1000000000", "ns:1000000000", 1_000_000_000),
    ("interval:2m", "m:2", 120_000_000_000),
    ("interval:5hz", "hz:5", 200_000_000),
    ("interval:hz:5", "hz:5", 200_000_000),
    ("profile:99hz", "hz:99", 0),
    ("p:hz:99", "hz:99", 0),
    ("profile:10ms", "ms:10", 10_000_000),
])
def test_timer_spellings(spec, target, period_ns):
    _, checked, _ = compile_to_ir(spec + " { @ = count(); }")
    [point] = checked.groups[0].points
    assert (point.target, point.period_ns) == (target, period_ns)


@pytest.mark.parametrize("spec", ["interval:0s", "interval:1x", "interval:abc:1", "interval:s:",
                                  "interval:ms"])
def test_timer_spelling_errors(spec):
    source = spec + " { }"
    assert error_of(source) == (
        f"stdin:1:1-{len(spec) + 1}: ERROR: invalid interval probe: {spec} (expected "
        "interval:UNIT:N, interval:N<UNIT> or interval:N in ns, with N > 0 and UNIT one of ns, "
        "us, ms, s, m, h, d, hz)\n"
        f"{source}\n" + "~" * len(spec))


def test_positional_parameters_in_probe_names():
    options = CompileOptions(params=("250", "x"))
    _, checked, _ = compile_to_ir("interval:ms:$1 { @ = count(); } interval:$1us { @b = count(); }",
                                  options=options)
    assert [g.points[0].target for g in checked.groups] == ["ms:250", "us:250"]
    # a missing parameter is empty, as in bpftrace
    with pytest.raises(CompileError, match=r"invalid interval probe: interval:ms: \("):
        compile_to_ir("interval:ms:$3 { }", options=options)


def test_begin_end_in_both_spellings():
    _, checked, _ = compile_to_ir("begin { @a = 1; } BEGIN { @b = 1; } end { @c = 1; } END { @d = 1; }")
    assert [g.provider.name for g in checked.groups] == ["BEGIN", "BEGIN", "END", "END"]
