"""bool (bpftrace 0.26): the types the checker gives comparisons, !, literals, casts and declared
variables, and how a bool joins integers; values and printing: tests/e2e/language/bool.pbt."""

import pytest

from pybpf import types as T
from pybpf.checked import BOOL, INT, unify
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError


def value_of(expr):
    return compile_to_ir(f"BEGIN {{ @v = {expr}; }}", options=CompileOptions())[1].maps["@v"].value


@pytest.mark.parametrize("expr", ["true", "false", "1 < 2", "1 == 1", '"a" != "b"', "!5", "1 && 0",
                                  "1 || 0", "(bool)7", '(bool)"s"', "(bool)curtask",
                                  "(1, 2) == (1, 2)", "(a=1) == (a=2)"])
def test_bools(expr):
    assert value_of(expr) == BOOL and str(BOOL) == "bool"


@pytest.mark.parametrize("expr,t", [("(int64)true", INT), ("true + 1", T.IntType(8, False)),
                                    ("(true, 1)", T.TupleType((BOOL, INT)))])
def test_not_bools(expr, t):
    assert value_of(expr) == t


def test_a_bool_beside_an_integer_takes_the_integers_type():
    assert unify(BOOL, INT) == INT and unify(INT, BOOL) == INT and unify(BOOL, BOOL) == BOOL
    checked = compile_to_ir("BEGIN { $n = -1; $n = 2 > 1; @n = $n; let $b: bool = 5; @b = $b; }",
                            options=CompileOptions())[1]
    assert checked.maps["@n"].value == INT and checked.maps["@b"].value == BOOL


def test_bool_survives_the_compiled_programs_json():
    assert T.from_json(T.to_json(BOOL)) == BOOL


def test_a_record_does_not_cast_to_bool():
    with pytest.raises(CompileError) as e:
        compile_to_ir("BEGIN { @v = (bool)(a=1); }", options=CompileOptions())
    assert str(e.value) == ("stdin:1:14-25: ERROR: Cannot cast (a=int64) to bool\n"
                            "BEGIN { @v = (bool)(a=1); }\n"
                            "             ~~~~~~~~~~~")
