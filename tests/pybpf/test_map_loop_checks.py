"""`for ($kv : @m)` and `len(@m)` in the type checker: $kv's type, the variables the body shares
with the probe, and bpftrace's errors (its type checker's messages where it has one)."""

import pytest

from pybpf import ast
from pybpf import types as T
from pybpf.compiler import compile_to_ir
from pybpf.diagnostics import CompileError

INT = T.IntType(8, True)
UINT = T.IntType(8, False)


def checked_of(source):
    return compile_to_ir(source)[1]


def loops_of(checked):
    return [n for p in checked.program.probes for n in ast.walk(p) if isinstance(n, ast.ForMap)]


def error_of(source):
    with pytest.raises(CompileError) as e:
        compile_to_ir(source)
    return str(e.value)


@pytest.mark.parametrize("update, value", [
    ('"abc"', T.StringType(4)), ("5", INT), ("count()", UINT), ("sum(5)", INT), ("min(5)", INT),
    ("max(5)", INT), ("avg(5)", INT)])
def test_kv_is_the_key_and_the_value_as_a_loop_reads_it(update, value):
    checked = checked_of(f"BEGIN {{ @m[1] = {update}; for ($kv : @m) {{ print($kv); }} }}")
    (loop,) = loops_of(checked)
    assert checked.types[loop.var] == T.TupleType((INT, value))


def test_a_map_with_several_keys_gives_a_tuple_of_keys():
    checked = checked_of('BEGIN { @m[1, "a"] = 2; for ($kv : @m) { print($kv.0.1); } }')
    (loop,) = loops_of(checked)
    assert checked.types[loop.var] == T.TupleType((T.TupleType((INT, T.StringType(2))), INT))


def test_the_body_shares_the_variables_declared_around_it_in_first_use_order():
    checked = checked_of('BEGIN { @m[1] = 1; $s = "x"; $n = 0; $unused = 1; '
                         'for ($kv : @m) { $n += $kv.1; $inner = 2; print(($s, $n)); } '
                         'for ($kv : @m) { for ($kw : @m) { $n++; } } }')
    first, outer, inner = loops_of(checked)
    assert [b.name for b in checked.loop_captures[first]] == ["$n", "$s"]
    # the inner loop's callback is called from the outer one's: both pass $n on
    assert [b.name for b in checked.loop_captures[outer]] == ["$n"]
    assert [b.name for b in checked.loop_captures[inner]] == ["$n"]


def test_len_is_an_integer():
    checked = checked_of("BEGIN { @m[1] = count(); $n = len(@m); }")
    assert [t for n, t in checked.types.items() if isinstance(n, ast.Call) and n.name == "len"] == [INT]


@pytest.mark.parametrize("source, message", [
    ("BEGIN { @m[1] = 1; $kv = 1; for ($kv : @m) { } }", "Loop declaration shadows existing variable: $kv"),
    ("BEGIN { for ($kv : @nope) { } }", "Undefined map: @nope"),
    ("BEGIN { @m[1] = 1; for ($kv : @m[1]) { } }", "A for-loop walks a whole map: @m without a key"),
    ("BEGIN { @m = 1; for ($kv : @m) { } }", "Maps used as for-loop expressions must have keys to iterate over"),
    ("BEGIN { @m[1] = hist(3); for ($kv : @m) { } }", "Loop expression does not support type: hist()"),
    ("BEGIN { @m[1] = lhist(3, 0, 10, 1); for ($kv : @m) { } }", "Loop expression does not support type: lhist()"),
    ("BEGIN { @m[1] = stats(3); for ($kv : @m) { } }", "Loop expression does not support type: stats()"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { return; } }", "'return' statement is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { while (1) { return; } } }",
     "'return' statement is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { @x = arg0; } }", "'arg0' builtin is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { @x = retval; } }", "'retval' builtin is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { @x = args.foo; } }", "'args' builtin is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { @x[kstack] = 1; } }", "'kstack' builtin is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { @x[ustack(3)] = 1; } }", "'ustack' builtin is not allowed in a for-loop"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { $y = 1; } print($y); }", "Undefined or undeclared variable: $y"),
    ("BEGIN { @m[1] = 1; for ($kv : @m) { } print($kv); }", "Undefined or undeclared variable: $kv"),
    ("BEGIN { @m = count(); $n = len(@m); }", "len() expects a map with keys; @m has none"),
    ("BEGIN { @m[1] = hist(2); $n = len(@m); }", "len() cannot count the keys of hist() map @m"),
    ("BEGIN { @m[1] = 2; $n = len(@m[1]); }", "len() expects a whole map, without a key"),
    ("BEGIN { $n = len(3); }", "len() expects a map argument"),
])
def test_errors(source, message):
    assert message in error_of(source)


def test_break_and_continue_belong_to_the_loop():
    compile_to_ir("BEGIN { @m[1] = 1; for ($kv : @m) { if ($kv.1) { continue; } break; } }")
