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


# The config block and the BPFTRACE_* variables (pybpf.settings) -------------------------------
def test_config_block_parses_words_numbers_and_strings():
    from pybpf.parser import parse
    program = parse('config = { max_map_keys = 2; stack_mode=perf; BPFTRACE_STR_TRUNC_TRAILER="~" }'
                    " BEGIN { }")
    assert [(c.name, c.value) for c in program.config] == [
        ("max_map_keys", 2), ("stack_mode", "perf"), ("BPFTRACE_STR_TRUNC_TRAILER", "~")]
    assert parse("config = { } BEGIN { }").config == ()


def test_config_sets_the_map_size_and_the_environment_wins():
    source = "config = { MAX_MAP_KEYS = 2 } BEGIN { @[1] = 1; }"
    assert compile_to_ir(source)[2].maps["@"].max_entries == 2
    options = CompileOptions(environment=(("max_map_keys", "7"),))
    assert compile_to_ir(source, options=options)[2].maps["@"].max_entries == 7
    # pybpf's own --map-entries is over both
    options = CompileOptions(map_entries=9, environment=(("max_map_keys", "7"),))
    assert compile_to_ir(source, options=options)[2].maps["@"].max_entries == 9


def test_config_max_probes():
    assert error_of("config = { max_probes = 1 } BEGIN { } END { }").startswith(
        "stdin: ERROR: Can't attach to 2 probes because it exceeds the current limit of 1 probes")


@pytest.mark.parametrize("source, rendered", [
    ("config = { BAD_CONFIG=1 } BEGIN { }",
     "stdin:1:12-24: ERROR: Unrecognized config variable: BAD_CONFIG\n"
     "config = { BAD_CONFIG=1 } BEGIN { }\n"
     "           ~~~~~~~~~~~~"),
    ('config = { BPFTRACE_MAX_PROBES="hello" } BEGIN { }',
     "stdin:1:12-39: ERROR: Invalid type for BPFTRACE_MAX_PROBES. Type: string. Expected Type: integer\n"
     'config = { BPFTRACE_MAX_PROBES="hello" } BEGIN { }\n'
     "           ~~~~~~~~~~~~~~~~~~~~~~~~~~~"),
    ("config = { missing_probes = maybe } BEGIN { }",
     "stdin:1:12-34: ERROR: Invalid value for missing_probes: maybe (expected one of error, warn, "
     "ignore)\n"
     "config = { missing_probes = maybe } BEGIN { }\n"
     "           " + "~" * len("missing_probes = maybe")),
    ("config = { print_maps_on_exit = 2 } BEGIN { }",
     "stdin:1:12-34: ERROR: Invalid value for print_maps_on_exit: 2 (expected true, false, 0 or 1)\n"
     "config = { print_maps_on_exit = 2 } BEGIN { }\n"
     "           " + "~" * len("print_maps_on_exit = 2")),
])
def test_config_errors(source, rendered):
    assert error_of(source) == rendered


def test_unimplemented_settings_are_accepted_with_a_warning():
    from pybpf.compiler import compile_source
    compiled = compile_source("config = { lazy_symbolication = 1 } BEGIN { }")
    assert compiled.warnings == (
        "stdin:1:12-34: WARNING: lazy_symbolication is accepted but not implemented by pybpf: it "
        "has no effect\nconfig = { lazy_symbolication = 1 } BEGIN { }\n           "
        "~~~~~~~~~~~~~~~~~~~~~~",)
    assert compiled.print_maps_on_exit


def test_print_maps_on_exit_travels_with_the_compiled_program():
    from pybpf.compiler import compile_source
    from pybpf.program import CompiledProgram
    compiled = compile_source("config = { print_maps_on_exit = false } BEGIN { @a = 1; }")
    assert not CompiledProgram.from_data(compiled.to_data()).print_maps_on_exit


def test_environment_values_are_checked_as_bpftrace_does():
    from pybpf.settings import SettingError, environment
    assert environment({"BPFTRACE_MAX_STRLEN": "128", "HOME": "/root"}) == (("max_strlen", "128"),)
    with pytest.raises(SettingError, match="^BPFTRACE_MISSING_PROBES: expecting one of error, warn, "
                                           "ignore, got no$"):
        environment({"BPFTRACE_MISSING_PROBES": "no"})


def test_bpftrace_017_variable_names_are_read_when_the_current_is_unset():
    from pybpf.settings import environment
    assert environment({"BPFTRACE_STRLEN": "100", "BPFTRACE_MAP_KEYS_MAX": "9"}) == (
        ("max_map_keys", "9"), ("max_strlen", "100"))
    assert environment({"BPFTRACE_STRLEN": "100", "BPFTRACE_MAX_STRLEN": "200"}) == (
        ("max_strlen", "200"),)


@pytest.mark.kernel
@pytest.mark.parametrize("mode, warned", [("warn", True), ("ignore", False)])
def test_missing_probes_warn_or_ignore(mode, warned):
    from pybpf.compiler import compile_source
    compiled = compile_source(f"config = {{ missing_probes = {mode} }} "
                              "t:sched:no_such_event, t:sched:sched_switch { @ = count(); }")
    assert [p.target for s in compiled.programs for p in s.attach_points] == ["sched:sched_switch"]
    assert bool(compiled.warnings) == warned
    assert error_of("t:sched:no_such_event { }").startswith(
        "stdin:1:1-22: ERROR: tracepoint not found: sched:no_such_event")


@pytest.mark.kernel
def test_missing_probes_covers_a_library_or_function_this_system_lacks():
    from pybpf.compiler import compile_source
    compiled = compile_source("config = { missing_probes = ignore } "
                              "uprobe:libnosuchlib:f, uprobe:libc:no_such_function, "
                              "uprobe:libc:malloc { @ = count(); }")
    assert [p.target.rsplit(":", 1)[1] for s in compiled.programs for p in s.attach_points] == \
        ["malloc"]
    assert not compiled.warnings
    assert "ERROR: no function 'no_such_function' in " in error_of("uprobe:libc:no_such_function { }")
    # a target written wrongly is no missing probe: refused whatever the setting
    assert "ERROR: bad uprobe offset" in error_of("config = { missing_probes = ignore } "
                                                  "uprobe:libc:malloc+x { }")


# Macros (pybpf.macros) -------------------------------------------------------------------------
def expanded(source: str):
    from pybpf.diagnostics import Diagnostics
    from pybpf.macros import expand_macros
    from pybpf.parser import parse
    diags = Diagnostics(source)
    program = expand_macros(parse(source), diags)
    assert not diags.items, diags.render()
    return program


def test_macro_calls_are_replaced_by_their_bodies():
    program = expanded("macro add_one(x) { x + 1 } macro one() { 1 } macro bump($a, @b) { $a += 1; "
                       "@b += 1; } BEGIN { $v = 1; @m = 2; bump($v, @m); @r = add_one(one); }")
    bump_var, bump_map, result = program.probes[0].body[2:]
    assert (bump_var.target.name, bump_map.target.name) == ("$v", "@m")
    assert result.value.op == "+" and result.value.left.value == 1 and result.value.right.value == 1
    assert program.macros == ()


def test_macro_variables_are_its_own():
    program = expanded("macro twice($a) { $t = $a * 2; $a = $t; } BEGIN { $t = 5; $x = 1; twice($x); "
                       "twice($x); }")
    names = [s.target.name for s in program.probes[0].body]
    assert names == ["$t", "$x", "$t.twice1", "$x", "$t.twice2", "$x"]


@pytest.mark.parametrize("source, message, at", [
    ("macro u() { @x++ } BEGIN { @x = 1; u(); }",
     "macro u uses the map @x, which is not one of its parameters", "@x"),
    ("macro w($x) { $x++ } BEGIN { @x = 1; w(@x); }", "macro w expects a variable for $x", "@x)"),
    ("macro w(@m) { @m = 1 } BEGIN { $x = 1; w($x); }", "macro w expects a map for @m", "$x)"),
    ("macro r($x) { $y + $x } BEGIN { $y = 1; print(r($y)); }",
     "macro r reads $y, which it neither assigns nor takes as a parameter", "$y +"),
    ("macro s($x) { $x++; $x } BEGIN { $y = 1; print(s($y)); }",
     "macro s is used as a value, but its body is not one expression (block expressions are not "
     "supported yet)", "s($y)"),
    ("macro a(x) { a(x) } BEGIN { print(a(1)); }",
     "macro a: expansion deeper than 32 (a macro that calls itself?)", "a(x) }"),
    ("macro a(x, y) { x } BEGIN { print(a(1)); }", "macro a takes 2 arguments (1 provided)", "a(1)"),
])
def test_macro_errors(source, message, at):
    column = source.index(at) + 1
    rendered = error_of(source)
    assert rendered.startswith(f"stdin:1:{column}-")
    assert rendered.split("\n")[0].endswith(f": ERROR: {message}")


# Constants of included headers (pybpf.uapi.headers) -------------------------------------------
def test_includes_are_collected():
    from pybpf.parser import parse
    program = parse('#include <linux/socket.h>\n  # include "net/sock.h"\nBEGIN { }')
    assert program.includes == ("linux/socket.h", "net/sock.h")


@needs_btf
def test_header_constants_need_their_header():
    source = "BEGIN { @f = AF_INET6; @s = TASK_UNINTERRUPTIBLE; }"
    _, checked, _ = compile_to_ir("#include <sys/socket.h>\n#include <linux/sched.h>\n" + source)
    assert sorted(checked.constants.values()) == [2, 10]
    assert error_of(source).split("\n")[:3] == [
        "stdin:1:14-22: ERROR: Unknown identifier: 'AF_INET6'", source, " " * 13 + "~" * 8]


# #define (object- and function-like, when the body is an expression) ---------------------------
def test_defines_become_unhygienic_macros():
    program = expanded('#define MAX 10\n#define KB(x) ((x) / 1024)\n#define SCALED ($v * 2)\n'
                       '#define NOT_AN_EXPRESSION struct foo\n'
                       "BEGIN { $v = 4; @a = MAX; @b = KB(4096); @c = SCALED; }")
    a, b, c = program.probes[0].body[1:]
    assert a.value.value == 10
    assert (b.value.op, b.value.left.value, b.value.right.value) == ("/", 4096, 1024)
    assert (c.value.left.name, c.value.span.line, c.value.span.column) == ("$v", 3, 17)


def test_a_define_that_is_no_expression_is_unknown_where_used():
    source = "#define T struct foo\nBEGIN { @a = T; }"
    assert error_of(source).split("\n")[0] == "stdin:2:14-15: ERROR: Unknown identifier: 'T'"


# C type definitions in the preamble (pybpf.cdefs) ----------------------------------------------
def test_c_definitions_are_read_whole():
    from pybpf.parser import parse
    program = parse("struct nameidata {\n  struct path path;\n  struct qstr last; // [...]\n};\n"
                    "typedef struct { int a; union { int b; } u; } anon_t;\n"
                    "config = { max_map_keys = 3 }\nenum e { A = 1, B };\nBEGIN { }")
    assert [(d.kind, d.name) for d in program.c_definitions] == [
        ("struct", "nameidata"), ("typedef", "anon_t"), ("enum", "e")]
    assert [c.name for c in program.config] == ["max_map_keys"]


@pytest.mark.kernel
def test_args_dot_and_arrow_and_dot_through_pointers():
    # bpftrace 0.26: `.` on a pointer dereferences it; `->` is an alias of `.`
    _, checked, _ = compile_to_ir(
        "t:syscalls:sys_enter_openat { @a[args.flags, args->flags] = count(); "
        "@p = curtask.real_parent.pid; @q = curtask->real_parent->pid; }")
    first, second = checked.maps["@a"].key
    assert first == second and isinstance(first, T.IntType)
    assert checked.maps["@p"].value == checked.maps["@q"].value
