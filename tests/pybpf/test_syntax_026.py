"""bpftrace 0.24-0.26 syntax that its newest tools use (opensnoop.bt, syscount.bt, biosnoop.bt):
macros between probes, `if`/`while` without parentheses, getopt(), string indexing, a tuple as a
map's keys and delete(@m, k). Each parses, type-checks and lowers; the e2e cases in
tests/e2e/language run them."""

import pytest

from pybpf import ast
from pybpf import types as T
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError
from pybpf.parser import parse

INT = T.IntType(8, True)


def checked(source: str, *params: str):
    return compile_to_ir(source, options=CompileOptions(params=params))[1]


def error_of(source: str, *params: str) -> str:
    with pytest.raises(CompileError) as info:
        checked(source, *params)
    return str(info.value)


def type_of_call(source: str, name: str, *params: str):
    result = checked(source, *params)
    return next(t for n, t in result.types.items() if isinstance(n, ast.Call) and n.name == name)


# Macros anywhere at the top level ----------------------------------------------------------------

def test_a_macro_between_probes_is_a_macro_of_the_script():
    script = parse("BEGIN { f(); } macro f() { printf(\"x\\n\"); } END { f(); }")
    assert [p.attach_points[0].text for p in script.probes] == ["BEGIN", "END"]
    assert [m.name for m in script.macros] == ["f"]


def test_a_macro_owns_the_variables_its_let_and_for_loops_declare():
    result = checked("macro walk(@m) { let $n = 2; for $j : 0..$n { @m[$j] = $j; } } "
                     "BEGIN { walk(@paths); }")
    assert result.maps["@paths"].key == (INT,)


# if and while without parentheses ----------------------------------------------------------------

@pytest.mark.parametrize("source", [
    "BEGIN { $x = 1; if $x { print(1); } else if $x > 2 { print(2); } }",
    "BEGIN { $x = 1; if ($x) { print(1); } }",
    "BEGIN { $i = 0; while $i < 3 { $i++; } }",
    "BEGIN { $i = 0; while ($i < 3) { $i++; } }",
])
def test_conditions_with_and_without_parentheses(source):
    checked(source)


def test_a_condition_without_parentheses_still_ends_at_its_block():
    assert error_of("BEGIN { if 1 print(1); }").split("\n")[0] == \
        "stdin:1:14-19: ERROR: syntax error, unexpected print"


# getopt ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, params, want", [
    ('getopt("depth", 35)', (), INT),
    ('getopt("depth", 35)', ("--depth=5",), INT),
    ('getopt("name", "none")', ("--name=sda",), T.StringType(4)),
    ('getopt("name", "none")', (), T.StringType(5)),
    ('getopt("verbose")', ("--verbose",), T.IntType(8, False, True)),
    ('getopt("verbose", false)', (), T.IntType(8, False, True)),
])
def test_getopt_is_typed_by_its_default(call, params, want):
    assert type_of_call(f"BEGIN {{ $v = {call}; }}", "getopt", *params) == want


@pytest.mark.parametrize("call, params, value", [
    ('getopt("depth", 35)', (), 35),
    ('getopt("depth", 35)', ("--depth=5",), 5),
    ('getopt("depth", -1)', ("--depth=0x10",), 16),
    ('getopt("name", "none")', ("--name=sda",), b"sda"),
    ('getopt("verbose")', (), False),
    ('getopt("verbose")', ("--verbose",), True),
    ('getopt("verbose")', ("--verbose=false",), False),
    ('getopt("verbose", true)', ("--verbose=0",), False),
    ('getopt("depth", 1)', ("--depth=2", "--depth=3"), 3),
])
def test_getopt_values(call, params, value):
    result = checked(f"BEGIN {{ $v = {call}; }}", *params)
    assert list(result.option_values.values()) == [value]


def test_named_arguments_are_not_positional():
    result = checked("BEGIN { printf(\"%s %d\\n\", str($1), $#); }", "--depth=3", "sda")
    assert (result.params, result.named_params) == (("sda",), ("--depth=3",))


@pytest.mark.parametrize("source, params, message", [
    ('BEGIN { $v = getopt("depth", 35); }', ("--depth=ten",),
     'stdin:1:14-33: ERROR: --depth=ten: getopt("depth") expects an integer'),
    ('BEGIN { $v = getopt("depth", 35); }', ("--depth",),
     'stdin:1:14-33: ERROR: --depth=: getopt("depth") expects an integer'),
    ('BEGIN { $v = getopt("v"); }', ("--v=maybe",),
     'stdin:1:14-25: ERROR: --v=maybe: getopt("v") is a bool option (true, false, 1 or 0)'),
    ('BEGIN { $n = "d"; $v = getopt($n, 1); }', (),
     "stdin:1:31-33: ERROR: getopt() expects the option's name as a string literal"),
    ('BEGIN { $v = getopt("d", pid); }', (),
     "stdin:1:26-29: ERROR: Expected a constant integer"),
])
def test_getopt_errors(source, params, message):
    assert error_of(source, *params).split("\n")[0] == message


# String indexing ---------------------------------------------------------------------------------

def test_a_string_indexes_to_a_char():
    result = checked('BEGIN { $s = "/tmp"; $c = $s[0]; $d = "/"[0]; }')
    chars = [t for n, t in result.types.items() if isinstance(n, ast.Index)]
    assert chars == [T.IntType(1, True)] * 2


def test_a_string_index_past_its_buffer_is_refused():
    assert error_of('BEGIN { $c = "ab"[3]; }').split("\n")[0] == \
        "stdin:1:19-20: ERROR: The index 3 is out of bounds for string[3]"


# A tuple as the keys of a map --------------------------------------------------------------------

def test_a_tuple_key_is_the_maps_keys():
    result = checked('BEGIN { $k = (1, "a"); @m[$k] = 1; @m[2, "b"] = 2; @m[(3, "c")] = 3; '
                     'printf("%d\\n", @m[$k]); }')
    assert result.maps["@m"].key == (INT, T.StringType(2))


def test_a_record_key_stays_one_key():
    result = checked('BEGIN { @m[(a=1, b=2)] = 1; }')
    (key,) = result.maps["@m"].key
    assert key.names == ("a", "b")


def test_a_tuple_key_of_other_arity_is_refused():
    assert error_of('BEGIN { $k = (1, 2, 3); @m[1, 2] = 1; @m[$k] = 2; }').split("\n")[0] == \
        "stdin:1:39-45: ERROR: Argument mismatch for @m: trying to access with 3 arguments when " \
        "map expects 2 arguments"


# delete(@m, k) -----------------------------------------------------------------------------------

def test_delete_takes_the_key_beside_the_map():
    result = checked('BEGIN { @m[1, "a"] = 1; $k = (1, "a"); delete(@m, $k); delete(@m, (1, "a")); '
                     '@s[2] = 1; delete(@s, 2); delete(@s[2]); }')
    assert result.maps["@s"].key == (INT,)


def test_delete_with_a_key_on_both_sides_is_refused():
    assert error_of('BEGIN { @s[2] = 1; delete(@s[2], 2); }').split("\n")[0] == \
        "stdin:1:27-32: ERROR: delete() expects a map without a key, then the key: delete(@m, k)"
