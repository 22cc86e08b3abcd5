"""Compile-time limits: each refused with one spanned error, never an LLVM crash or a verifier log.

Table: source -> the first line of the rendered error (FILE:LINE:COL-COL: ERROR: message); the
rendering's other two lines (source line, `~` under the span) are checked against the span."""

import re

import pytest

from pybpf.compiler import compile_source, compile_to_ir
from pybpf.diagnostics import CompileError

ARGS_33 = ", ".join(["1"] * 33)
ELEMENTS_33 = ", ".join(str(i) for i in range(1, 34))

LIMITS = [
    # string sizes: str(x, n) takes 1 <= n <= 256
    ('BEGIN { printf("%s\\n", str(1, 0)); }',
     "stdin:1:31-32: ERROR: str() length must be between 1 and 256"),
    ('BEGIN { printf("%s\\n", str(1, 257)); }',
     "stdin:1:31-34: ERROR: str() length must be between 1 and 256"),
    # map key size: at most 256 bytes (keys are built on the 512-byte stack)
    ("BEGIN { @m[str(1, 200), str(2, 200)] = 1; }",
     "stdin:1:9-37: ERROR: The key of @m takes 400 bytes, more than the 256 a map key can have: "
     "use fewer or shorter strings (str(x, n))"),
    ("BEGIN { @m[str(1, 241), 1, 2] = count(); }",
     "stdin:1:9-30: ERROR: The key of @m takes 264 bytes, more than the 256 a map key can have: "
     "use fewer or shorter strings (str(x, n))"),
    # tuple size: at most 256 bytes, by bytes or by elements
    ("BEGIN { $t = (str(1, 256), 1); }",
     "stdin:1:14-30: ERROR: The tuple takes 264 bytes, more than the 256 a tuple can have: "
     "use fewer or shorter elements (str(x, n))"),
    (f"BEGIN {{ @t = ({ELEMENTS_33}); }}",
     "stdin:1:14-137: ERROR: The tuple takes 264 bytes, more than the 256 a tuple can have: "
     "use fewer or shorter elements (str(x, n))"),
    # printf arguments: at most 32
    (f'BEGIN {{ printf("{"%d" * 33}\\n", {ARGS_33}); }}',
     "stdin:1:9-186: ERROR: printf: too many arguments (33, at most 32)"),
    # loop bounds: unroll(1..100); `while` is bounded by the verifier (see the kernel test below)
    ("BEGIN { unroll(0) { } }", "stdin:1:16-17: ERROR: unroll count must be between 1 and 100"),
    ("BEGIN { unroll(101) { } }", "stdin:1:16-19: ERROR: unroll count must be between 1 and 100"),
    # the 512-byte BPF stack and the per-CPU scratch space after it, pointing at the statement
    # that crosses them (each str() takes its buffer and its variable's)
    ("config = { max_strlen = 8192 } BEGIN { $a = str(1); $b = str(2); $c = str(3); $d = str(4); }",
     "stdin:1:79-90: ERROR: The probe's values take more than the BPF stack's 512 bytes and the "
     "32768 bytes of scratch space after it (40976 bytes by here): use fewer or shorter strings "
     "and tuples"),
]


@pytest.mark.parametrize("source, first_line", LIMITS)
def test_limit_is_one_spanned_error(source, first_line):
    with pytest.raises(CompileError) as caught:
        compile_to_ir(source)
    lines = str(caught.value).splitlines()
    assert lines[0] == first_line
    start, end = map(int, re.match(r"stdin:1:(\d+)-(\d+):", first_line).groups())
    assert lines[1:] == [source, " " * (start - 1) + "~" * (end - start)]


@pytest.mark.parametrize("source", [
    "BEGIN { @m[str(1, 200), 1] = 1; }",          # 208-byte key
    "BEGIN { @t = (" + ", ".join(str(i) for i in range(16)) + "); }",   # 128 bytes (a map value copies it)
    "BEGIN { unroll(100) { @n = count(); } }",
])
def test_just_inside_the_limits_compiles(source):
    compile_to_ir(source)


@pytest.mark.kernel
def test_an_unbounded_while_is_a_verifier_error_with_a_hint():
    from pybpf.backend.objspec import parse_object
    from pybpf.runtime.errors import VerifierError
    from pybpf.runtime.loader import load

    compiled = compile_source("BEGIN { $i = 0; while ($i >= 0) { $i++; } }")
    with pytest.raises(VerifierError) as caught:
        load(parse_object(compiled.elf), compiled).close()
    text = str(caught.value)
    assert text.startswith("the kernel's verifier rejected the program for BEGIN:\n")
    assert "BPF program is too large" in text and "hint: a loop the verifier could not bound" in text
    assert len(text.splitlines()) <= 6 < len(caught.value.log.splitlines())


# The attach-point limit (bpftrace's max_probes, BPFTRACE_MAX_PROBES in the CLI) --------------------
THREE_POINTS = "BEGIN { @a = 1; } END { @b = 2; } interval:s:1 { @c = 3; }"


def test_more_attach_points_than_the_limit_are_refused_in_one_line():
    from pybpf.compiler import CompileOptions
    with pytest.raises(CompileError) as e:
        compile_to_ir(THREE_POINTS, options=CompileOptions(max_probes=2))
    assert str(e.value) == ("stdin: ERROR: Can't attach to 3 probes because it exceeds the current "
                            "limit of 2 probes; raise it with the BPFTRACE_MAX_PROBES environment "
                            "variable, with care: every probe adds to the load and attach time and "
                            "runs on each of its events")


def test_the_limit_is_checked_before_the_types():
    """Right after the probes are resolved: a wildcard too wide costs no type check or LLVM run."""
    from pybpf.compiler import CompileOptions
    with pytest.raises(CompileError, match="Can't attach to 3 probes") as e:
        compile_to_ir(THREE_POINTS.replace("@c = 3", '@c = "x" + 1'), options=CompileOptions(max_probes=2))
    assert len(e.value.items) == 1


def test_as_many_attach_points_as_the_limit_compile():
    from pybpf.compiler import CompileOptions
    assert compile_to_ir(THREE_POINTS, options=CompileOptions(max_probes=3))[0]

