"""kstack/ustack's type rules: their modes and frame counts, and the stack map they bring
(no kernel needed: compile_to_ir stops before loading)."""

import pytest

from pybpf import types as T
from pybpf.compiler import compile_to_ir
from pybpf.diagnostics import CompileError
from pybpf.program import STACKS_MAP

REFUSED = [
    ("BEGIN { @[kstack(foo)] = count(); }",
     "kstack: unknown stack mode 'foo' (expected one of bpftrace, perf, raw)"),
    ("BEGIN { @[ustack(0)] = count(); }",
     "ustack: the number of frames must be an integer literal from 1 to 127"),
    ("BEGIN { @[ustack(perf, 200)] = count(); }",
     "ustack: the number of frames must be an integer literal from 1 to 127"),
    ("BEGIN { $n = 3; @[kstack($n)] = count(); }",
     "kstack: the number of frames must be an integer literal from 1 to 127"),
    ('BEGIN { $s = "do_nanosleep"; kaddr($s); }', "kaddr() expects a string literal"),
    ('BEGIN { kaddr("no_such_kernel_symbol_here"); }',
     "kaddr: no kernel symbol named 'no_such_kernel_symbol_here'"),
    ('BEGIN { ksym("x"); }', "ksym() expects an integer, got string[2]"),
    ('tracepoint:syscalls:sys_enter_read { @ = uaddr("x"); }',
     'uaddr can not be used with "tracepoint" probes'),
    ('BEGIN { usym("x"); }', "usym() expects an integer, got string[2]"),
]


@pytest.mark.parametrize("source,message", REFUSED)
def test_refused_with_a_message(source, message):
    with pytest.raises(CompileError) as raised:
        compile_to_ir(source)
    assert message in str(raised.value)


@pytest.mark.parametrize("expr,expected", [
    ("kstack", T.StackType(False)),
    ("ustack", T.StackType(True)),
    ("kstack()", T.StackType(False)),
    ("ustack(5)", T.StackType(True, "bpftrace", 5)),
    ("kstack(perf)", T.StackType(False, "perf")),
    ("ustack(raw, 3)", T.StackType(True, "raw", 3)),
])
def test_stack_types_as_map_keys(expr, expected):
    ir_text, _, plan = compile_to_ir(f"BEGIN {{ @[{expr}] = count(); }}")
    assert plan.maps["@"].key == (expected,)
    assert STACKS_MAP in ir_text


def test_the_stack_map_only_where_a_stack_is_read():
    assert STACKS_MAP not in compile_to_ir("BEGIN { @[pid] = count(); }")[0]


def test_stack_type_survives_the_compiled_metadata():
    t = T.StackType(True, "perf", 9)
    assert T.from_json(T.to_json(t)) == t
