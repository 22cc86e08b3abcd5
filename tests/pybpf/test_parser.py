"""The grammar: programs that parse, and syntax errors with their exact rendering (bpftrace's form)."""

import os

import pytest

from pybpf import ast
from pybpf.diagnostics import CompileError
from pybpf.parser import MAX_NESTING, integer_literal, parse

PARSES = [
    "BEGIN { exit(); }",
    "tracepoint:syscalls:sys_enter_open* < @[probe]=count(); >",
    "tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }",
    "t:syscalls:sys_enter_openat, t:syscalls:sys_enter_close { @[probe] = count(); }",
    "BEGIN < $a = 1; if ($a > 0) { @x = 1; } @y = $a > 1; >",
    "BEGIN { @x = 1 } END { @y = 2 }",                   # last statement without ';'
    "BEGIN /1/ { @a = 1; }",
    "BEGIN /pid > 1/ { @a = 1; }",
    "BEGIN /4 / 2 > 1/ { @a = 1; }",                   # division inside a predicate
    "BEGIN /(8 / 2) / 2 > 1/ { @a = 1; }",
    "BEGIN { @a = 8 / 2 / 2; }",
    "BEGIN { @a = 1 << 4; @b = 256 >> 2; @c = 1 < 2; @d = 2 > 1; @e = 1 <= 2; @f = 2 >= 1; }",
    "BEGIN < @a = 1 << 4; @b = 256 >> 2; >",
    "// a comment\nBEGIN { /* inline */ @a = 1; // trailing\n }",
    "/* block\n comment */ BEGIN { @a = 1; }",
    "#!/usr/bin/env pybpf\nBEGIN { @a = 1; }",
    "#include <linux/sched.h>\nBEGIN { @a = 1; }",
    "BEGIN { $a = 1; $a += 2; $a -= 1; $a *= 3; $a /= 2; $a %= 5; $a <<= 1; $a >>= 1; "
    "$a &= 7; $a |= 8; $a ^= 1; }",
    "BEGIN { @a++; @a--; ++@b; --@b; $x = 0; $x++; ++$x; @m[1]++; }",
    "BEGIN { $a = 1 ? 2 : 3; @s = pid > 1 ? \"big\" : \"small\"; }",
    "BEGIN { $t = (1, \"two\", 3); @t = $t; printf(\"%d\\n\", $t.0); }",
    "BEGIN { if (1) { @a = 1; } else if (2) { @a = 2; } else { @a = 3; } }",
    "BEGIN { $i = 0; while ($i < 10) { $i++; if ($i == 2) { continue; } if ($i > 5) { break; } } }",
    "BEGIN { unroll(5) { @a++; } }",
    "BEGIN { return; }",
    "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args->filename)); }",
    "tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", str(args.filename)); }",
    "BEGIN { @a = $1; @b = $#; @c = str($2); }",
    "BEGIN { @a = 0x10 + 0b101 + 1_000; @b = -1; @c = !0; @d = ~0; }",
    "BEGIN { @a = 1 && 0 || 1; @b = 1 & 2 | 3 ^ 4; @c = 1 == 1 != 0; }",
    "interval:s:1 { exit(); }",
    "i:ms:100 { @ = count(); }",
    "BEGIN { @m[1, \"a\", comm] = count(); delete(@m[1, \"a\", comm]); clear(@m); zero(@m); }",
    "BEGIN {}",
    "BEGIN { ; ; }",
]


@pytest.mark.parametrize("source", PARSES)
def test_parses(source):
    program = parse(source)
    assert isinstance(program, ast.Script)
    assert program.probes


def test_angle_form_equals_brace_form():
    angle = parse("tracepoint:syscalls:sys_enter_open* < @[probe]=count(); >")
    brace = parse("tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }")
    assert [p.text for p in angle.probes[0].attach_points] == \
        [p.text for p in brace.probes[0].attach_points] == ["tracepoint:syscalls:sys_enter_open*"]
    assert repr(_shape(angle)) == repr(_shape(brace))


def _shape(node):
    """The AST without spans, for structural comparison."""
    if isinstance(node, tuple):
        return tuple(_shape(n) for n in node)
    if ast.is_node(node):
        return (type(node).__name__,) + tuple(_shape(getattr(node, f)) for f in node._fields if f != "span")
    return node


def test_predicate_with_division_keeps_the_division():
    (probe,) = parse("BEGIN /4 / 2 > 1/ { @a = 1; }").probes
    pred = probe.predicate
    assert isinstance(pred, ast.Binary) and pred.op == ">"
    assert isinstance(pred.left, ast.Binary) and pred.left.op == "/"


def test_shift_is_one_operator():
    (probe,) = parse("BEGIN { @a = 1 << 4 >> 2; }").probes
    value = probe.body[0].value
    assert (value.op, value.left.op) == (">>", "<<")


def test_precedence():
    value = parse("BEGIN { @a = 1 + 2 * 3 == 7 && 1; }").probes[0].body[0].value
    assert value.op == "&&" and value.left.op == "==" and value.left.left.op == "+"
    assert value.left.left.right.op == "*"


def test_compound_assignment_and_incdec():
    body = parse("BEGIN { $a = 1; $a <<= 2; $a++; --$a; }").probes[0].body
    assert body[1].op == "<<" and body[1].value.value == 2
    assert (body[2].expr.op, body[2].expr.prefix) == ("++", False)
    assert (body[3].expr.op, body[3].expr.prefix) == ("--", True)


def test_let_declarations():
    body = parse('BEGIN { let $a; let $b: uint16 = 5; let $s = "x"; }').probes[0].body
    assert all(isinstance(s, ast.VarDecl) for s in body)
    assert (body[0].var.name, body[0].type_name, body[0].value) == ("$a", None, None)
    assert (body[1].type_name, body[1].value.value) == ("uint16", 5)
    assert (body[2].type_name, body[2].value.value) == (None, b"x")


@pytest.mark.parametrize("source", ["BEGIN { for ($i : 1..$n) { @a++; } for ($kv : @m) { } }",
                                    # bpftrace 0.24+: the parentheses are optional
                                    "BEGIN { for $i : 1..$n { @a++; } for $kv : @m { } }"])
def test_for_loops(source):
    ranged, over_map = parse(source).probes[0].body
    assert isinstance(ranged, ast.ForRange) and ranged.var.name == "$i"
    assert ranged.start.value == 1 and ranged.end.name == "$n" and len(ranged.body) == 1
    assert isinstance(over_map, ast.ForMap) and over_map.map.name == "@m"


def test_else_if_chains_nest():
    (stmt,) = parse("BEGIN { if (1) { @a = 1; } else if (2) { @a = 2; } else { @a = 3; } }") \
        .probes[0].body
    assert isinstance(stmt, ast.If) and isinstance(stmt.otherwise[0], ast.If)
    assert len(stmt.otherwise[0].otherwise) == 1


def test_arrow_and_dot_fields():
    src = "tracepoint:syscalls:sys_enter_openat { @a = args->flags; @b = args.flags; }"
    a, b = parse(src).probes[0].body
    assert (a.value.field, a.value.arrow) == ("flags", True)
    assert (b.value.field, b.value.arrow) == ("flags", False)


def test_params_and_tuple_index():
    a, b, c = parse("BEGIN { @a = $1; @b = $#; @c = (1, 2).1; }").probes[0].body
    assert isinstance(a.value, ast.PositionalParam) and a.value.index == 1
    assert isinstance(b.value, ast.ParamCount)
    assert isinstance(c.value, ast.TupleIndex) and c.value.index == 1


def test_string_escapes():
    value = parse(r'BEGIN { @s = "a\tb\n\"q\"\\\x41\101"; }').probes[0].body[0].value
    assert value.value == b'a\tb\n"q"\\AA'


def test_integer_literals():
    body = parse("BEGIN { @a = 0x1f; @b = 0b11; @c = 1_000_000; }").probes[0].body
    assert [s.value.value for s in body] == [31, 3, 1000000]


def test_spans_are_one_based_and_end_exclusive():
    (stmt,) = parse("BEGIN { foo(); }").probes[0].body
    span = stmt.expr.span
    assert (span.line, span.column, span.end_column) == (1, 9, 14)


# Rendered exactly. Marked `bpftrace` where bpftrace 0.17 prints the same thing; the others differ
# from bpftrace in the `, expecting ...` tail (bison's LALR tables list other tokens than Lark's)
# and in the token names it uses.
SYNTAX_ERRORS = [
    ("BEGIN { @a = 1 + ; }",                                    # bpftrace
     "stdin:1:18-19: ERROR: syntax error, unexpected ;\n"
     "BEGIN { @a = 1 + ; }\n"
     "                 ~"),
    ("BEGIN { @a = 1; } }",                                     # bpftrace: ", expecting {"
     "stdin:1:19-20: ERROR: syntax error, unexpected }, expecting end of file or macro or probe\n"
     "BEGIN { @a = 1; } }\n"
     "                  ~"),
    ("BEGIN { if (1) { } else }",                               # bpftrace
     "stdin:1:25-26: ERROR: syntax error, unexpected }, expecting { or if\n"
     "BEGIN { if (1) { } else }\n"
     "                        ~"),
    ("BEGIN { @a = 1 ",
     "stdin:1:16-17: ERROR: syntax error, unexpected end of file, expecting }\n"
     "BEGIN { @a = 1 \n"
     "               ~"),
    ("BEGIN {\n  @a = 1;\n  @b = / 2;\n}",
     "stdin:3:8-9: ERROR: syntax error, unexpected /\n"
     "  @b = / 2;\n"
     "       ~"),
    ("BEGIN { @a = 1 ` 2; }",                                   # bpftrace: invalid character '`'
     "stdin:1:16-17: ERROR: syntax error, unexpected '`'\n"
     "BEGIN { @a = 1 ` 2; }\n"
     "               ~"),
    ("BEGIN { $a = 1e-3; }",                                 # scientific literals are integers
     "stdin:1:14-15: ERROR: syntax error, unexpected '1'\n"
     "BEGIN { $a = 1e-3; }\n"
     "             ~"),
    ("BEGIN { let $a: 5 = 1; }",
     "stdin:1:17-18: ERROR: syntax error, unexpected 5\n"
     "BEGIN { let $a: 5 = 1; }\n"
     "                ~"),
    ("BEGIN < @a = 1 >",
     "stdin:1:17-18: ERROR: syntax error, unexpected end of file\n"
     "BEGIN < @a = 1 >\n"
     "                ~"),
]


@pytest.mark.parametrize("source,rendered", SYNTAX_ERRORS, ids=[s for s, _ in SYNTAX_ERRORS])
def test_syntax_error_rendering(source, rendered):
    with pytest.raises(CompileError) as e:
        parse(source)
    assert str(e.value) == rendered
    assert all(d.span.line >= 1 for d in e.value.items)


@pytest.mark.parametrize("text, value", [("10", 10), ("010", 8), ("09", 9), ("0x1F", 31), ("0b101", 5),
                                         ("1_000_000", 1_000_000), ("0_10", 8),
                                         ("18446744073709551615", 2 ** 64 - 1),
                                         ("0x1ffffffffffffffff", 2 ** 65 - 1),
                                         ("9" * 5000, 2 ** 64), ("0" * 5000 + "7", 7),
                                         # bpftrace 0.26's docs: scientific, suffixes, durations
                                         ("2e3", 2000), ("1e6", 10 ** 6), ("1_000e3", 10 ** 6),
                                         ("0o17", 15), ("123UL", 123), ("123U", 123), ("123LL", 123),
                                         ("0x1fULL", 31), ("0xd", 13), ("1m", 60 * 10 ** 9),
                                         ("5s", 5 * 10 ** 9), ("100ms", 10 ** 8), ("3us", 3000),
                                         ("7ns", 7), ("1h", 3600 * 10 ** 9), ("1d", 86400 * 10 ** 9),
                                         ("1e30", 10 ** 30), ("1e999999", 2 ** 64)])
def test_integer_literals_read_as_bpftrace_reads_them(text, value):
    # past 64 bits the value is the checker's to refuse; past any 64-bit value's digits, 2**64
    assert integer_literal(text) == value


def test_a_byte_that_is_not_utf8_is_a_string_literal_byte_and_a_syntax_error_elsewhere():
    program = parse('BEGIN { printf("caf\udce9\\n"); }')
    (call,) = [n for n in ast.walk(program) if isinstance(n, ast.Call)]
    assert call.args[0].value == b"caf\xe9\n"
    with pytest.raises(CompileError) as e:
        parse("BEGIN {\n \udce9 }")
    assert str(e.value).startswith("stdin:2:2-3: ERROR: syntax error, unexpected byte 0xe9 (not UTF-8)")


def test_nesting_past_the_limit_is_one_error_found_without_recursion():
    with pytest.raises(CompileError) as e:
        parse("BEGIN { @x = " + "+".join(["1"] * (MAX_NESTING + 50)) + "; }")
    assert len(e.value.items) == 1 and "nests too deeply" in e.value.items[0].message


def test_a_library_caller_under_the_default_recursion_limit_gets_a_compile_error_not_recursion():
    from pybpf.compiler import CompileOptions, compile_to_ir
    from pybpf.parser import nesting_limit
    with pytest.raises(CompileError) as e:      # 700 terms: a RecursionError before
        compile_to_ir("BEGIN { @x = " + "+".join(["1"] * 700) + "; }", "stdin", CompileOptions())
    assert f"pybpf compiles up to {nesting_limit()} levels" in str(e.value)
    compile_to_ir("BEGIN { @x = " + "+".join(["1"] * (nesting_limit() - 10)) + "; }", "stdin",
                  CompileOptions())


def test_a_typedef_name_in_parentheses_is_a_cast_an_expression_stays_one():
    def value(source):
        return parse(source).probes[0].body[0].value

    script_typedef = "typedef unsigned char byte_t;\nBEGIN { $c = (byte_t)$x; }"
    assert parse(script_typedef).probes[0].body[0].value.type_name == "byte_t"
    assert value("BEGIN { $c = (byte_t *) $x; }").type_name == "byte_t *"    # known or not
    for expression in ("(pid) * 2", "(pid) - 1", "(pid)", "(comm) == \"x\""):
        assert not isinstance(value(f"BEGIN {{ $c = {expression}; }}"), ast.Cast), expression
    sizes = parse("typedef int n_t;\nBEGIN { @ = sizeof(n_t) + offsetof(n_t, x); }").probes[0].body[0]
    assert sizes.value.left.type_name == "n_t" and sizes.value.right.type_name == "n_t"


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="needs the kernel's BTF")
def test_a_kernel_typedef_is_a_cast_type():
    assert parse("BEGIN { $c = (pid_t)pid; }").probes[0].body[0].value.type_name == "pid_t"


def test_a_cast_to_a_name_that_is_no_type_says_so():
    with pytest.raises(CompileError) as e:
        parse("BEGIN { $p = (my_t)0; }")
    assert str(e.value) == ("stdin:1:14-20: ERROR: Unknown type: my_t\n"
                            "BEGIN { $p = (my_t)0; }\n             ~~~~~~")


def test_a_headers_typedef_is_a_cast_type():
    from pybpf.diagnostics import Diagnostics
    from pybpf.include import Header
    from pybpf.parser import parse_source
    header = Header("h.h", "typedef struct { int x; } rec_t;\ntypedef unsigned short hw_t;\n")
    program = parse_source(Diagnostics("BEGIN { $a = (hw_t)$x; }"), (header,))
    assert program.probes[0].body[0].value.type_name == "hw_t"
