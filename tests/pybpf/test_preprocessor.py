"""The C preprocessor's conditionals of a script (pybpf.preprocessor): the branches taken, and
errors rendered at the directive."""

import pytest

from pybpf import parser
from pybpf.diagnostics import CompileError, Diagnostics
from pybpf.include import Header
from pybpf.preprocessor import active_text, predefined


def kept(source: str, names=None) -> list[str]:
    """The non-directive lines left of `source`."""
    d = Diagnostics(source, "stdin")
    text = active_text(source, d, {} if names is None else names)
    assert text is not None, d.render()
    assert text.count("\n") == source.count("\n")          # lines stay where they were
    return [line for line in text.split("\n") if line and not line.lstrip().startswith("#")]


def test_ifdef_ifndef_else_and_btf():
    source = ("#ifndef BPFTRACE_HAVE_BTF\nstruct x { int a; };\n#else\nwith_btf\n#endif\n"
              "#ifdef BPFTRACE_HAVE_BTF\nalso\n#endif\n")
    assert kept(source, {"BPFTRACE_HAVE_BTF": "1"}) == ["with_btf", "also"]
    assert kept(source) == ["struct x { int a; };"]


def test_if_elif_over_defines_defined_and_nesting():
    source = ("#define A 2\n#define EMPTY\n"
              "#if A * 3 > 5 && defined(EMPTY) && !defined NOPE\none\n#elif 1\nno\n#else\nno\n#endif\n"
              "#if 0\n#if 1\nno\n#endif\n#elif EMPTY || UNDEFINED\nno\n#elif (A << 1) == 4\ntwo\n#endif\n"
              "#if 0\n#define A 9\n#endif\n#if A == 2\nthree\n#endif\n"
              "#undef A\n#ifndef A\nfour\n#endif\n"
              "#define LONG \\\n  (A2 + \\\n   1)\n#define A2 2\n#if LONG == 3\nfive\n#endif\n")
    assert kept(source) == ["one", "two", "three", "four", "  (A2 + \\", "   1)", "five"]


def test_predefined_names_come_from_btf_and_headers(tmp_path):
    assert predefined(btf_path=str(tmp_path / "none")) == {}
    (tmp_path / "vmlinux").write_text("")
    names = predefined((Header("defs.h", "#define LEN 3\n#define F(x) x\n"),),
                       btf_path=str(tmp_path / "vmlinux"))
    assert names == {"BPFTRACE_HAVE_BTF": "1", "LEN": "3"}


@pytest.mark.parametrize("source, error", [
    ("#if\n#endif", "stdin:1:1-4: ERROR: #if: expected an expression\n#if\n~~~"),
    ("BEGIN {}\n#endif", "stdin:2:1-7: ERROR: #endif without #if\n#endif\n~~~~~~"),
    ("#ifdef X\nBEGIN {}", "stdin:1:1-9: ERROR: unterminated conditional directive\n#ifdef X\n~~~~~~~~"),
    ("#if 1\n#else\n#elif 1\n#endif", "stdin:3:1-8: ERROR: #elif after #else\n#elif 1\n~~~~~~~"),
    ("#if 4 / 0\n#endif",
     "stdin:1:1-10: ERROR: #if: division by zero in a constant\n#if 4 / 0\n~~~~~~~~~"),
    ("#define F(x) x\n#if F(1)\n#endif",
     "stdin:2:1-9: ERROR: #if: function-like macro 'F' in a condition is not supported\n#if F(1)\n~~~~~~~~"),
])
def test_errors_point_at_the_directive(source, error):
    with pytest.raises(CompileError) as e:
        parser.parse(source)
    assert str(e.value) == error


def test_the_parser_reads_only_the_branches_taken():
    program = parser.parse("#define N 1\n#if N\n#define M 2\n#include <linux/sched.h>\n#else\n"
                           "#define M 3\n#include <linux/socket.h>\nstruct s { int x; }\n#endif\n"
                           "BEGIN { printf(\"%d\", M); }")
    assert program.includes == ("linux/sched.h",)
    assert [name for name, _ in program.defines] == ["N", "M"]
    assert program.c_definitions == ()
