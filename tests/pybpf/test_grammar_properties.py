"""Properties over generated programs.

1. compile_to_ir either succeeds or raises CompileError whose diagnostics all have a span (line >= 1);
   never another exception. Over generated programs and over mutations/truncations of valid ones.
2. (kernel) what the type checker accepts, the verifier accepts: well-typed BEGIN programs load.

Budgets: PYBPF_HYPOTHESIS_EXAMPLES=N raises the number of examples (default 200, and 25 for loading).
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.compiler import compile_source, compile_to_ir
from pybpf.diagnostics import CompileError

EXAMPLES = int(os.environ.get("PYBPF_HYPOTHESIS_EXAMPLES", "200"))
KERNEL_EXAMPLES = int(os.environ.get("PYBPF_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow],
                database=None)

VARS = ["$a", "$b", "$s"]
MAPS = ["@m", "@n"]           # and @k, always keyed

ints = st.integers(min_value=-(2 ** 40), max_value=2 ** 40).map(str)
small = st.integers(min_value=0, max_value=64).map(str)
strings = st.sampled_from(['"a"', '"hello"', '""', '"x\\ty"', '"%d"'])
builtins = st.sampled_from(["pid", "tid", "uid", "gid", "cpu", "nsecs", "elapsed", "cgroup",
                            "rand", "comm", "probe", "$#", "$1"])
binops = st.sampled_from(["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "==", "!=",
                          "<", ">", "<=", ">=", "&&", "||"])


def expressions(leaves, integer_only=False):
    def extend(inner):
        forms = [
            st.tuples(inner, binops, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["-", "!", "~"]), inner).map(lambda t: f"{t[0]}{t[1]}"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        ]
        if not integer_only:
            forms += [
                inner.map(lambda e: f"@k[{e}]"),
                inner.map(lambda e: f"str({e})"),
                st.lists(inner, min_size=2, max_size=3).map(lambda es: "(" + ", ".join(es) + ")"),
                # records: names drawn from few, so duplicates and mixes (name "") reach the checker
                st.lists(st.tuples(st.sampled_from(["a", "b", "c", ""]), inner), min_size=1, max_size=3)
                .map(lambda fs: "(" + ", ".join(f"{n}={e}" if n else e for n, e in fs) + ",)"),
                st.tuples(inner, st.sampled_from(["a", "b", "0"])).map(lambda t: f"({t[0]}).{t[1]}"),
            ]
        return st.one_of(*forms)
    return st.recursive(leaves, extend, max_leaves=6)


# Integer reads of kernel memory through the BTF types (curtask's fields and beyond).
kernel_ints = st.sampled_from([
    "curtask->pid", "curtask->parent->tgid", "(*curtask).prio", "curtask->se.vruntime",
    "sizeof(struct task_struct)", "offsetof(struct task_struct, pid)", "(uint8)pid",
    "(int16)nsecs", "((struct task_struct *)curtask)->flags", "*(uint32 *)curtask"])

# Anything goes: the property is only "no crash, spans on errors".
any_expr = expressions(st.one_of(ints, strings, builtins, kernel_ints, st.just("curtask->comm"),
                                 st.sampled_from(VARS + MAPS)))

# Integers only, over initialised variables: these should all type-check.
int_expr = expressions(st.one_of(small, st.sampled_from(["pid", "cpu", "nsecs", "$a", "$b"]),
                                 kernel_ints),
                       integer_only=True)

AGG = st.sampled_from(["count()", "sum({})", "min({})", "max({})", "avg({})", "stats({})",
                       "hist({})", "lhist({}, 0, 100, 10)"])


def statements(expr, depth=2, loose=True):
    simple = st.one_of(
        st.tuples(st.sampled_from(VARS), expr).map(lambda t: f"{t[0]} = {t[1]};"),
        st.tuples(st.sampled_from(MAPS), expr).map(lambda t: f"{t[0]} = {t[1]};"),
        st.tuples(expr, expr).map(lambda t: f"@k[{t[0]}] = {t[1]};"),
        st.tuples(st.sampled_from(["@agg", "@agg2"]), AGG, expr)
        .map(lambda t: f"{t[0]} = {t[1].format(t[2])};"),
        st.tuples(st.sampled_from(VARS + MAPS), st.sampled_from(["+=", "-=", "<<=", "|="]), expr)
        .map(lambda t: f"{t[0]} {t[1]} {t[2]};"),
        st.tuples(st.sampled_from(VARS + MAPS), st.sampled_from(["++", "--"])).map("".join)
        .map(lambda s: s + ";"),
        expr.map(lambda e: f'printf("%d %s\\n", {e}, "x");'),
        expr.map(lambda e: f"print({e});"),
        st.sampled_from(["exit();", "print(@m);", "clear(@k);", "zero(@agg);", "break;",
                         "continue;", "return;", 'time("%H\\n");', "delete(@k[1]);"]),
    )
    if depth == 0:
        return simple
    block = st.lists(statements(expr, depth - 1, loose), max_size=3).map(lambda ss: " ".join(ss))
    return st.one_of(
        simple, simple,
        st.tuples(expr, block).map(lambda t: f"if ({t[0]}) {{ {t[1]} }}"),
        st.tuples(expr, block, block).map(lambda t: f"if ({t[0]}) {{ {t[1]} }} else {{ {t[2]} }}"),
        st.tuples(expr, block).map(lambda t: f"while ({t[0]}) {{ {t[1]} }}") if loose else
        st.tuples(st.integers(0, 8), block)      # a bound the verifier can see
        .map(lambda t: f"$i = 0; while ($i < {t[0]}) {{ $i++; {t[1]} }}"),
        st.tuples(st.integers(0, 5), block).map(lambda t: f"unroll({t[0]}) {{ {t[1]} }}"),
    )


programs = st.lists(statements(any_expr), min_size=1, max_size=5).map(
    lambda ss: "BEGIN { $a = 1; $b = 2; $s = \"s\"; @k[0] = 0; " + " ".join(ss) + " }")

VALID = [
    'BEGIN { $x = 10; $x += 5; @v = $x; @str["a", 1] = "s"; @c[comm] = count(); exit(); }',
    "BEGIN /1/ { @h = hist(5); @l = lhist(15, 0, 100, 10); } END { print(@h); }",
    'BEGIN < $i = 0; while ($i < 5) { $i++; if ($i == 3) { continue; } @w = sum($i); } >',
    'BEGIN { @t = (1, "two"); $t = (1, "two"); printf("%s %d\\n", $t.1, $t.0); }',
    'BEGIN { $r = (a=1, b="x", c=(d=2)); @r[(k=$r.a)] = $r; $r = (c=(d=3), b="yz", a=$r.c.d); }',
    "interval:ms:100 { @ = count(); if (@x > 2) { exit(); } else { @x++; } }",
]
TOKENS = ["{", "}", "<", ">", "(", ")", ";", ",", "/", "@", "$", '"', "=", "++", "count()",
          "BEGIN", "1", "str(", "->", ".", "if", "else", "\n", "#", "//", "/*", "*/", "\\"]


@st.composite
def mutated(draw):
    src = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(src)))
        kind = draw(st.sampled_from(["truncate", "delete", "insert", "replace"]))
        if kind == "truncate":
            src = src[:i]
        elif kind == "delete":
            src = src[:i] + src[i + draw(st.integers(1, 5)):]
        elif kind == "insert":
            src = src[:i] + draw(st.sampled_from(TOKENS)) + src[i:]
        else:
            src = src[:i] + draw(st.sampled_from(TOKENS)) + src[i + 1:]
    return src


def compiles_or_reports(source):
    try:
        compile_to_ir(source)
    except CompileError as e:
        assert e.items, source
        for d in e.items:
            assert d.span.line >= 1, (source, d)
        assert str(e)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(programs)
def test_generated_programs_compile_or_report(source):
    compiles_or_reports(source)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(mutated())
def test_mutated_programs_compile_or_report(source):
    compiles_or_reports(source)


@settings(max_examples=EXAMPLES // 4 or 1, **SETTINGS)
@given(st.text(alphabet="BEGIN{}<>()/;@$\"=+-*!~%&|^?:.,0123456789abcx \n#\\", max_size=60))
def test_arbitrary_text_compiles_or_reports(source):
    compiles_or_reports(source)


well_typed = st.lists(statements(int_expr, depth=1, loose=False), min_size=1, max_size=4).map(
    lambda ss: "BEGIN { $a = 1; $b = 2; $s = \"s\"; @m = 0; @n = 0; @k[0] = 0; "
               + " ".join(ss) + " }")


@pytest.mark.kernel
@settings(max_examples=KERNEL_EXAMPLES, **SETTINGS)
@given(well_typed)
def test_verifier_accepts_what_the_type_checker_accepts(source):
    from pybpf.backend.objspec import parse_object
    from pybpf.runtime.loader import load
    try:
        compiled = compile_source(source)
    except CompileError:
        return                    # rejected up front: fine
    before = bpf_fds()
    load(parse_object(compiled.elf), compiled).close()
    assert bpf_fds() == before, "load().close() left BPF fds open"


def bpf_fds() -> list[str]:
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith(("anon_inode:bpf", "anon_inode:[perf_event]")):
            held.append(target)
    return sorted(held)
