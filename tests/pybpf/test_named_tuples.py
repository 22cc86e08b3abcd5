"""Records, bpftrace's named tuples `(a=1, b="x")`: parsing, the checker's rules and errors (rendered
exactly), the types it infers; their values and printed forms are in tests/runtime/test_output.py
and tests/e2e/language/records.pbt."""

import pytest

from pybpf import ast
from pybpf import types as T
from pybpf.checked import unify
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError
from pybpf.parser import parse

INT = T.IntType(8, True)


def tuple_of(source):
    """The first ast.Tuple of `BEGIN { print(SOURCE); }`."""
    return next(n for n in ast.walk(parse(f"BEGIN {{ print({source}); }}")) if isinstance(n, ast.Tuple))


@pytest.mark.parametrize("source,names", [
    ('(a=1, b="x")', ("a", "b")),
    ("(a=1)", ("a",)),
    ("(a=1,)", ("a",)),
    ("(a=(1, 2), b=(c=3))", ("a", "b")),
    ("(1, 2)", ()),
    ("(1,)", ()),
    ("(1, b=2)", ("", "b")),          # parsed; the checker refuses the mix
])
def test_parse_names(source, names):
    assert tuple_of(source).names == names


def test_a_parenthesised_comparison_stays_an_expression():
    program = parse("BEGIN { print((a == 1)); }")
    assert not any(isinstance(n, ast.Tuple) for n in ast.walk(program))


ERRORS = [
    ("BEGIN { $r = (a=1, a=2); }",
     "stdin:1:20-21: ERROR: Duplicate field name in record: 'a'\n"
     "BEGIN { $r = (a=1, a=2); }\n"
     "                   ~"),
    ("BEGIN { $r = (a=1, 2); }",
     "stdin:1:20-21: ERROR: Named and unnamed fields cannot be mixed: name every field of a record "
     "(name=value), or none for a tuple\n"
     "BEGIN { $r = (a=1, 2); }\n"
     "                   ~"),
    ("BEGIN { $r = (1, b=2); }",
     "stdin:1:15-16: ERROR: Named and unnamed fields cannot be mixed: name every field of a record "
     "(name=value), or none for a tuple\n"
     "BEGIN { $r = (1, b=2); }\n"
     "              ~"),
    ("BEGIN { $r = (a=1, b=2); print($r.c); }",
     "stdin:1:32-36: ERROR: Record of type '(a=int64, b=int64)' does not contain a field named 'c'\n"
     "BEGIN { $r = (a=1, b=2); print($r.c); }\n"
     "                               ~~~~"),
    ("BEGIN { $r = (a=1, b=2); print($r.0); }",
     "stdin:1:32-36: ERROR: Can not access index 0 on record type '(a=int64, b=int64)': its fields "
     "are read by name (.a, .b)\n"
     "BEGIN { $r = (a=1, b=2); print($r.0); }\n"
     "                               ~~~~"),
    ("BEGIN { $r = (a=1, b=2); print($r[1]); }",
     "stdin:1:32-37: ERROR: The array index operator [] can only be used on arrays, tuples, strings "
     "and typed pointers, found (a=int64, b=int64)\n"
     "BEGIN { $r = (a=1, b=2); print($r[1]); }\n"
     "                               ~~~~~"),
    ("BEGIN { $t = (1, 2); print($t.a); }",
     "stdin:1:28-32: ERROR: Can not access field 'a' on type '(int64, int64)'\n"
     "BEGIN { $t = (1, 2); print($t.a); }\n"
     "                           ~~~~"),
    ("BEGIN { $r = (a=1, b=2); $r = (a=1, c=2); }",
     "stdin:1:26-28: ERROR: Type mismatch for $r: trying to assign value of type '(a=int64, c=int64)' "
     "when variable already contains a value of type '(a=int64, b=int64)'\n"
     "BEGIN { $r = (a=1, b=2); $r = (a=1, c=2); }\n"
     "                         ~~"),
    ("BEGIN { $r = (a=1, b=2); $r = (1, 2); }",
     "stdin:1:26-28: ERROR: Type mismatch for $r: trying to assign value of type '(int64, int64)' "
     "when variable already contains a value of type '(a=int64, b=int64)'\n"
     "BEGIN { $r = (a=1, b=2); $r = (1, 2); }\n"
     "                         ~~"),
    ("BEGIN { @[(a=1)] = 1; @[(b=1)] = 2; }",
     "stdin:1:23-31: ERROR: Argument mismatch for @: trying to access with arguments: [(b=int64)] "
     "when map expects arguments: [(a=int64)]\n"
     "BEGIN { @[(a=1)] = 1; @[(b=1)] = 2; }\n"
     "                      ~~~~~~~~"),
    ("BEGIN { print((a=1, b=\"x\") == (b=\"x\", a=1)); }",
     "stdin:1:15-43: ERROR: Type mismatch for '==': comparing '(a=int64, b=string[2])' with "
     "'(b=string[2], a=int64)'\n"
     "BEGIN { print((a=1, b=\"x\") == (b=\"x\", a=1)); }\n"
     "              ~~~~~~~~~~~~~~~~~~~~~~~~~~~~"),
    ('BEGIN { $r = (a=1, b=printf("x")); }',
     "stdin:1:22-33: ERROR: Invalid record field of type void\n"
     'BEGIN { $r = (a=1, b=printf("x")); }\n'
     "                     ~~~~~~~~~~~"),
]


@pytest.mark.parametrize("source,rendered", ERRORS, ids=[s[:60] for s, _ in ERRORS])
def test_error_rendering(source, rendered):
    with pytest.raises(CompileError) as e:
        compile_to_ir(source, options=CompileOptions())
    assert str(e.value) == rendered


def checked_of(source):
    return compile_to_ir(source, options=CompileOptions())[1]


def test_inferred_types():
    checked = checked_of('BEGIN { $r = (a=1, b="xy", c=(d=2, e=(3, 4))); @m[(comm=comm, n=1)] = $r; '
                         "@s[(k=1)] = count(); }")
    record = T.TupleType((INT, T.StringType(3), T.TupleType((INT, T.TupleType((INT, INT))), ("d", "e"))),
                         ("a", "b", "c"))
    assert checked.maps["@m"].key == (T.TupleType((T.StringType(T.COMM_SIZE), INT), ("comm", "n")),)
    assert checked.maps["@m"].value == record
    assert checked.maps["@s"].key == (T.TupleType((INT,), ("k",)),)
    assert str(record) == "(a=int64, b=string[3], c=(d=int64, e=(int64, int64)))"


def test_field_access_types():
    checked = checked_of('BEGIN { $r = (a=1, b="xy", c=(d=2)); @a = $r.a; @b = $r.b; @d = $r.c.d; }')
    assert (checked.maps["@a"].value, checked.maps["@b"].value, checked.maps["@d"].value) == \
        (INT, T.StringType(3), INT)


def test_records_unify_by_name_in_the_first_order():
    ab = T.TupleType((INT, T.StringType(2)), ("a", "b"))
    ba = T.TupleType((T.StringType(5), INT), ("b", "a"))
    assert unify(ab, ba) == T.TupleType((INT, T.StringType(5)), ("a", "b"))
    assert unify(ba, ab) == T.TupleType((T.StringType(5), INT), ("b", "a"))
    assert unify(ab, T.TupleType((INT, T.StringType(2)))) is None        # a record is no tuple
    assert unify(ab, T.TupleType((INT, T.StringType(2)), ("a", "c"))) is None


def test_a_variable_takes_records_in_another_order_and_wider_strings():
    checked = checked_of('BEGIN { $r = (a=1, b="x"); $r = (b="longer", a=2); @r = $r; }')
    assert checked.maps["@r"].value == T.TupleType((INT, T.StringType(7)), ("a", "b"))


def test_record_types_survive_the_compiled_programs_json():
    record = T.TupleType((INT, T.TupleType((T.StringType(4),), ("s",))), ("a", "b"))
    assert T.from_json(T.to_json(record)) == record
    assert T.from_json(["tuple", [["int", 8, True]]]) == T.TupleType((INT,))   # before records
