"""The type checker: source -> the exact rendered error, and the types it infers.

Programs that use only BEGIN/END/interval need no tracefs; tracepoint programs are kernel-marked."""

import pytest

from pybpf import types as T
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError
from pybpf.program import MapKind

INT = T.IntType(8, True)
UINT = T.IntType(8, False)

MANY_STRINGS = ("config = { max_strlen = 8192 } BEGIN { $a = str(1); $b = $a; $c = $a; $d = $a; $e = $a; $f = $a; "
                "$g = $a; $h = $a; $i = $a; $j = $a; "
                "printf(\"%s%s%s%s%s%s%s%s%s%s\\n\", $a, $b, $c, $d, $e, $f, $g, $h, $i, $j); }")

ERRORS = [
    # unknown function
    ("BEGIN { foo(); }",
     "stdin:1:9-14: ERROR: Unknown function: foo\n"
     "BEGIN { foo(); }\n"
     "        ~~~~~"),
    # type mismatch for a map
    ('BEGIN { @x = 1; @x = "a"; }',
     "stdin:1:17-19: ERROR: Type mismatch for @x: trying to assign value of type 'string[2]' "
     "when map already contains a value of type 'int64'\n"
     'BEGIN { @x = 1; @x = "a"; }\n'
     "                ~~"),
    ("BEGIN { @ = count(); @ = sum(1); }",
     "stdin:1:22-23: ERROR: Type mismatch for @: trying to assign value of type 'sum()' "
     "when map already contains a value of type 'count()'\n"
     "BEGIN { @ = count(); @ = sum(1); }\n"
     "                     ~"),
    ('BEGIN { $x = 1; $x = "s"; }',
     "stdin:1:17-19: ERROR: Type mismatch for $x: trying to assign value of type 'string[2]' "
     "when variable already contains a value of type 'int64'\n"
     'BEGIN { $x = 1; $x = "s"; }\n'
     "                ~~"),
    # argument counts: printf, str, lhist, hist
    ("BEGIN { printf(); }",
     "stdin:1:9-17: ERROR: printf() expects a format string literal as its first argument\n"
     "BEGIN { printf(); }\n"
     "        ~~~~~~~~"),
    ('BEGIN { printf("%d %d\\n", 1); }',
     "stdin:1:9-29: ERROR: printf: Not enough arguments for format string (1 supplied, 2 expected)\n"
     'BEGIN { printf("%d %d\\n", 1); }\n'
     "        ~~~~~~~~~~~~~~~~~~~~"),
    ('BEGIN { printf("%d\\n", "s"); }',
     "stdin:1:24-27: ERROR: printf: %d specifier expects a value of type integer (got string[2])\n"
     'BEGIN { printf("%d\\n", "s"); }\n'
     "                       ~~~"),
    ("BEGIN { $s = str(); }",
     "stdin:1:14-19: ERROR: str() requires 1 to 2 arguments (0 provided)\n"
     "BEGIN { $s = str(); }\n"
     "             ~~~~~"),
    ("BEGIN { $s = str(1, 2, 3); }",
     "stdin:1:14-26: ERROR: str() requires 1 to 2 arguments (3 provided)\n"
     "BEGIN { $s = str(1, 2, 3); }\n"
     "             ~~~~~~~~~~~~"),
    ("BEGIN { @l = lhist(1, 2); }",
     "stdin:1:14-25: ERROR: lhist() requires 4 arguments (2 provided)\n"
     "BEGIN { @l = lhist(1, 2); }\n"
     "             ~~~~~~~~~~~"),
    ("BEGIN { @h = hist(); }",
     "stdin:1:14-20: ERROR: hist() requires 1 to 2 arguments (0 provided)\n"
     "BEGIN { @h = hist(); }\n"
     "             ~~~~~~"),
    # aggregation not assigned to a map
    ("BEGIN { count(); }",
     "stdin:1:9-16: ERROR: count() should be directly assigned to a map\n"
     "BEGIN { count(); }\n"
     "        ~~~~~~~"),
    ("BEGIN { $x = sum(1); }",
     "stdin:1:14-20: ERROR: sum() should be directly assigned to a map\n"
     "BEGIN { $x = sum(1); }\n"
     "             ~~~~~~"),
    # map keys
    ("BEGIN { @m[1] = 1; @m[1, 2] = 2; }",
     "stdin:1:20-28: ERROR: Argument mismatch for @m: trying to access with 2 arguments when map "
     "expects 1 arguments\n"
     "BEGIN { @m[1] = 1; @m[1, 2] = 2; }\n"
     "                   ~~~~~~~~"),
    ('BEGIN { @m["a"] = 1; @m[1] = 2; }',
     "stdin:1:22-27: ERROR: Argument mismatch for @m: trying to access with arguments: [int64] "
     "when map expects arguments: [string[2]]\n"
     'BEGIN { @m["a"] = 1; @m[1] = 2; }\n'
     "                     ~~~~~"),
    # undefined things
    ("BEGIN { print($y); }",
     "stdin:1:15-17: ERROR: Undefined or undeclared variable: $y\n"
     "BEGIN { print($y); }\n"
     "              ~~"),
    ("BEGIN { delete(@nope[1]); }",
     "stdin:1:16-24: ERROR: Undefined map: @nope\n"
     "BEGIN { delete(@nope[1]); }\n"
     "               ~~~~~~~~"),
    # jumps
    ("BEGIN { break; }",
     "stdin:1:9-14: ERROR: 'break' outside of a loop\n"
     "BEGIN { break; }\n"
     "        ~~~~~"),
    ("BEGIN { continue; }",
     "stdin:1:9-17: ERROR: 'continue' outside of a loop\n"
     "BEGIN { continue; }\n"
     "        ~~~~~~~~"),
    # declarations and scopes (bpftrace's messages)
    ("BEGIN { if (1) { $b = 1; } print($b); }",
     "stdin:1:34-36: ERROR: Undefined or undeclared variable: $b\n"
     "BEGIN { if (1) { $b = 1; } print($b); }\n"
     "                                 ~~"),
    ("BEGIN { let $a = 1; let $a = 2; }",
     "stdin:1:25-27: ERROR: Variable $a was already declared. Variable shadowing is not allowed.\n"
     "BEGIN { let $a = 1; let $a = 2; }\n"
     "                        ~~"),
    ("BEGIN { $a = 1; if (1) { let $a; } }",
     "stdin:1:30-32: ERROR: Variable $a was already declared. Variable shadowing is not allowed.\n"
     "BEGIN { $a = 1; if (1) { let $a; } }\n"
     "                             ~~"),
    ("BEGIN { $i = 1; for ($i : 0..2) { } }",
     "stdin:1:22-24: ERROR: Variable $i was already declared. Variable shadowing is not allowed.\n"
     "BEGIN { $i = 1; for ($i : 0..2) { } }\n"
     "                     ~~"),
    ("BEGIN { for ($i : 0..2) { } print($i); }",
     "stdin:1:35-37: ERROR: Undefined or undeclared variable: $i\n"
     "BEGIN { for ($i : 0..2) { } print($i); }\n"
     "                                  ~~"),
    ("BEGIN { let $a: uint8 = 256; }",
     "stdin:1:13-15: ERROR: Type mismatch for $a: trying to assign value of type 'uint16' when "
     "variable already has a type 'uint8'\n"
     "BEGIN { let $a: uint8 = 256; }\n"
     "            ~~"),
    ("BEGIN { let $a: int8 = -129; }",
     "stdin:1:13-15: ERROR: Type mismatch for $a: trying to assign value of type 'int16' when "
     "variable already has a type 'int8'\n"
     "BEGIN { let $a: int8 = -129; }\n"
     "            ~~"),
    ('BEGIN { let $a: uint16 = "s"; }',
     "stdin:1:13-15: ERROR: Type mismatch for $a: trying to assign value of type 'string[2]' when "
     "variable already contains a value of type 'uint16'\n"
     'BEGIN { let $a: uint16 = "s"; }\n'
     "            ~~"),
    ('BEGIN { for ($i : 0.."a") { } }',
     "stdin:1:22-25: ERROR: Loop range requires an integer, not 'string[2]'\n"
     'BEGIN { for ($i : 0.."a") { } }\n'
     "                     ~~~"),
    # arrays
    ('BEGIN { $a = (uint8[4])1; }',
     'stdin:1:14-25: ERROR: Cannot cast int64 to uint8[4]: the sizes differ (8 and 4 bytes)\n'
     'BEGIN { $a = (uint8[4])1; }\n'
     '             ~~~~~~~~~~~'),
    ('BEGIN { $a = (uint8[8])1; $b = $a[8]; }',
     'stdin:1:35-36: ERROR: The index 8 is out of bounds for uint8[8]\n'
     'BEGIN { $a = (uint8[8])1; $b = $a[8]; }\n'
     '                                  ~'),
    ('BEGIN { $x = 1; $b = $x[0]; }',
     'stdin:1:22-27: ERROR: The array index operator [] can only be used on arrays, tuples, strings and typed pointers, found int64\n'
     'BEGIN { $x = 1; $b = $x[0]; }\n'
     '                     ~~~~~'),
    ('BEGIN { $a = (1, 2); $i = 1; $b = $a[$i]; }',
     "stdin:1:38-40: ERROR: A tuple's index must be a constant integer\n"
     'BEGIN { $a = (1, 2); $i = 1; $b = $a[$i]; }\n'
     '                                     ~~'),
    ('BEGIN { $a = (uint8[8])"s"; }',
     'stdin:1:14-27: ERROR: Cannot cast string[2] to uint8[8]\n'
     'BEGIN { $a = (uint8[8])"s"; }\n'
     '             ~~~~~~~~~~~~~'),
    ('BEGIN { $x = (1, "ab") == (1, "abc"); }',
     "stdin:1:14-37: ERROR: Type mismatch for '==': comparing '(int64, string[3])' with "
     "'(int64, string[4])'\n"
     'BEGIN { $x = (1, "ab") == (1, "abc"); }\n'
     "             ~~~~~~~~~~~~~~~~~~~~~~~"),
    # strings and integers
    ('BEGIN { if ("a" == 1) { } }',
     "stdin:1:13-21: ERROR: Type mismatch for '==': comparing 'string[2]' with 'int64'\n"
     'BEGIN { if ("a" == 1) { } }\n'
     "            ~~~~~~~~"),
    ("BEGIN { if (comm == 1) { } }",
     "stdin:1:13-22: ERROR: Type mismatch for '==': comparing 'string[16]' with 'int64'\n"
     "BEGIN { if (comm == 1) { } }\n"
     "            ~~~~~~~~~"),
    ('BEGIN { @a = "x" + 1; }',
     "stdin:1:14-21: ERROR: The '+' operator needs integers, not 'string[2]' and 'int64'\n"
     'BEGIN { @a = "x" + 1; }\n'
     "             ~~~~~~~"),
    ('BEGIN { $x = 1; $x += "a"; }',
     "stdin:1:23-26: ERROR: The += operator needs integers, not string[2]\n"
     'BEGIN { $x = 1; $x += "a"; }\n'
     "                      ~~~"),
    ('BEGIN { $a = 1 ? 2 : "s"; }',
     "stdin:1:14-25: ERROR: Ternary operator branches have different types: 'int64' and 'string[2]'\n"
     'BEGIN { $a = 1 ? 2 : "s"; }\n'
     "             ~~~~~~~~~~~"),
    # others
    ("BEGIN { unroll(0) { } }",
     "stdin:1:16-17: ERROR: unroll count must be between 1 and 100\n"
     "BEGIN { unroll(0) { } }\n"
     "               ~"),
    ("BEGIN { @c = count(); @d = @c + 1; }",
     "stdin:1:28-30: ERROR: @c holds count() values, which cannot be read in a probe; print() it instead\n"
     "BEGIN { @c = count(); @d = @c + 1; }\n"
     "                           ~~"),
    ("BEGIN { @t = (1, 2).5; }",
     "stdin:1:14-22: ERROR: Invalid tuple index: 5. Found 2 elements in tuple\n"
     "BEGIN { @t = (1, 2).5; }\n"
     "             ~~~~~~~~"),
]


def error_of(source, params=()):
    with pytest.raises(CompileError) as e:
        compile_to_ir(source, options=CompileOptions(params=tuple(params)))
    return str(e.value)


@pytest.mark.parametrize("source,rendered", ERRORS, ids=[s[:60] for s, _ in ERRORS])
def test_error_rendering(source, rendered):
    assert error_of(source) == rendered


def test_stack_over_512_bytes_is_a_diagnostic_not_a_crash():
    # ten 8 KiB strings fit neither the stack nor the scratch space after it
    lines = error_of(MANY_STRINGS).split("\n")
    assert lines[0].startswith("stdin:1:")
    assert "ERROR: The probe's values take more than the BPF stack's 512 bytes" in lines[0]
    assert lines[1] == MANY_STRINGS and set(lines[2].strip()) == {"~"}


def test_every_error_is_reported_not_just_the_first():
    rendered = error_of("BEGIN { foo(); $x = $y; }")
    assert rendered.count("ERROR") == 2
    assert "Unknown function: foo" in rendered and "Undefined or undeclared variable: $y" in rendered


def test_args_outside_tracepoints():
    # the list of probe kinds that have args is growing (rawtracepoint, fentry, ...)
    first, line, tildes = error_of("BEGIN { @a = args->x; }").split("\n")
    assert first.startswith("stdin:1:14-18: ERROR: The args builtin can only be used with tracepoint")
    assert (line, tildes) == ("BEGIN { @a = args->x; }", "             ~~~~")


def test_numeric_param_given_text():
    assert error_of("BEGIN { @a = $1 + 1; }", ["bash"]) == (
        'stdin:1:14-16: ERROR: $1 used numerically but given "bash". Try using str($1).\n'
        "BEGIN { @a = $1 + 1; }\n"
        "             ~~")


@pytest.mark.parametrize("arg, span", [
    ("$1 + 6", "33-36"), ("$1 * 2", "33-36"), ("$1 - 1", "33-36"), ("$1 + $2", "33-37"),
])
def test_str_of_a_param_takes_one_constant_offset_up_to_its_length(arg, span):
    # bpftrace's words and span (the operator to the end of the right operand)
    source = f'BEGIN {{ printf("<%s>\\n", str({arg})); }}'
    assert error_of(source, ["hello", "2"]) == (
        f"stdin:1:{span}: ERROR: only addition of a single constant less or equal to the length "
        f"of $1 (which is 5) is allowed inside str()\n{source}\n" + " " * 32 + "~" * (len(arg) - 3))


@pytest.mark.parametrize("arg", ["$1 + 1 + 1", "@x[$1]"])
def test_str_refuses_a_param_deeper_in_its_argument(arg):
    source = f'BEGIN {{ printf("<%s>\\n", str({arg})); }}'
    assert error_of(source, ["hello"]) == (
        "stdin:1:26-" + str(31 + len(arg)) + ": ERROR: str() only accepts positional parameters "
        f"directly or with a single constant offset added\n{source}\n" + " " * 25 + "~" * (len(arg) + 5))


@pytest.mark.kernel
@pytest.mark.parametrize("source,rendered", [
    ("tracepoint:syscalls:sys_enter_openat { @ = args->nofield; }",
     "stdin:1:44-57: ERROR: Struct/union of type 'struct _tracepoint_syscalls_sys_enter_openat' "
     "does not contain a field named 'nofield'\n"
     "tracepoint:syscalls:sys_enter_openat { @ = args->nofield; }\n"
     "                                           ~~~~~~~~~~~~~"),
    # bpftrace's own words: the verifier refuses reads of a record's first 8 bytes
    ("tracepoint:sched:sched_process_exec { @ = args.common_pid; }",
     "stdin:1:43-58: ERROR: BPF does not support accessing common tracepoint fields\n"
     "tracepoint:sched:sched_process_exec { @ = args.common_pid; }\n"
     "                                          ~~~~~~~~~~~~~~~"),
])
def test_tracepoint_errors(source, rendered):
    assert error_of(source) == rendered


@pytest.mark.kernel
def test_args_as_a_value_is_a_struct_of_its_fields():
    maps = maps_of("tracepoint:sched:sched_switch { @a[1] = args; }")
    value = maps["@a"].value
    assert isinstance(value, T.StructType) and value.name == "struct _tracepoint_sched_sched_switch"
    assert [(name, offset, str(t)) for name, offset, t in value.fields][:3] == \
        [("prev_comm", 0, "string[16]"), ("prev_pid", 16, "int64"), ("prev_prio", 24, "int64")]
    assert error_of("t:syscalls:sys_enter_openat, t:syscalls:sys_enter_close { print(args); }") == (
        "stdin:1:65-69: ERROR: args has different fields in the probes this block attaches to: "
        "read them one by one (args.NAME)\n"
        "t:syscalls:sys_enter_openat, t:syscalls:sys_enter_close { print(args); }\n"
        "                                                                ~~~~")


def maps_of(source, params=()):
    _, checked, _ = compile_to_ir(source, options=CompileOptions(params=tuple(params)))
    return checked.maps


def test_inferred_map_types():
    maps = maps_of('BEGIN { @a[1, "x"] = 2; @c[comm] = count(); @h = hist(3); @s = "str"; '
                   '@t = (1, "ab"); @p[probe] = sum(2); @l[pid] = lhist(5, 0, 100, 10); '
                   '@avg = avg(1); @st = stats(1); @mn = min(1); @mx = max(1); }')
    assert (maps["@a"].kind, maps["@a"].key, maps["@a"].value) == \
        (MapKind.VALUE, (INT, T.StringType(2)), INT)
    assert (maps["@c"].kind, maps["@c"].key) == (MapKind.COUNT, (T.StringType(T.COMM_SIZE),))
    assert (maps["@h"].kind, maps["@h"].key) == (MapKind.HIST, ())
    assert maps["@s"].value == T.StringType(4)
    assert maps["@t"].value == T.TupleType((INT, T.StringType(3)))
    assert (maps["@p"].kind, maps["@p"].key) == (MapKind.SUM, (T.ProbeType(),))
    assert maps["@l"].kind == MapKind.LHIST and maps["@l"].key == (UINT,)
    assert (maps["@l"].lhist.min, maps["@l"].lhist.max, maps["@l"].lhist.step) == (0, 100, 10)
    assert [maps[m].kind for m in ("@avg", "@st", "@mn", "@mx")] == \
        [MapKind.AVG, MapKind.STATS, MapKind.MIN, MapKind.MAX]


def test_map_read_before_its_assignment_in_a_later_probe():
    maps = maps_of("END { @b = @a; } BEGIN { @a = 1; }")
    assert maps["@b"].value == INT


def test_string_params_and_param_count():
    maps = maps_of("BEGIN { @s = str($2); @n = $#; @i = $1; }", ["7", "bash"])
    assert isinstance(maps["@s"].value, T.StringType)
    assert maps["@n"].value.size == 8 and maps["@i"].value.size == 8


def test_strings_of_different_lengths_share_a_map():
    maps = maps_of('BEGIN { @m["a"] = 1; @m["abcdef"] = 2; @s = "a"; @s = "abcdef"; }')
    assert maps["@m"].key[0].size >= 7 and maps["@s"].value.size >= 7


def test_a_name_in_two_blocks_is_two_variables():
    _, checked, _ = compile_to_ir('BEGIN { if (1) { $x = 1; } else { $x = "s"; } }')
    types = {str(b.type) for b in checked.variables.values()}
    assert types == {"int64", "string[2]"}


def test_declared_width_is_kept():
    _, checked, _ = compile_to_ir("BEGIN { let $x: uint16 = 1; $x += 70000; let $y; }")
    assert {(b.name, str(b.type), b.declared) for b in checked.variables.values()} == \
        {("$x", "uint16", True), ("$y", "int64", False)}


def test_builtin_types():
    _, checked, _ = compile_to_ir("BEGIN { $p = pid; $c = comm; $n = nsecs; }")
    vars_ = {b.name: b.type for b in checked.variables.values()}
    assert vars_ == {"$p": UINT, "$c": T.StringType(T.COMM_SIZE), "$n": UINT}


@pytest.mark.kernel
def test_tracepoint_field_types():
    maps = maps_of("tracepoint:syscalls:sys_enter_openat { @f[str(args->filename)] = count(); "
                   "@fl = args.flags; }")
    assert isinstance(maps["@f"].key[0], T.StringType) and maps["@f"].kind == MapKind.COUNT
    assert isinstance(maps["@fl"].value, T.IntType)


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("42", 42), ("010", 8), ("0x10", 16), ("0b101", 5), ("+5", 5), (" 7", 7), ("-9223372036854775808", -2 ** 63),
    ("18446744073709551615", 2 ** 64 - 1), ("0xffffffffffffffff", 2 ** 64 - 1),
    ("18446744073709551616", None), ("-9223372036854775809", None), ("0x1ffffffffffffffff", None),
    ("1_000", None), ("1e3", None), ("12abc", None), ("08", None), ("7 ", None), ("9" * 5000, None)])
def test_positional_parameters_read_as_integers_as_bpftrace_reads_them(text, value):
    from pybpf.checked import param_int
    assert param_int(text) == value


def test_array_casts_and_indexes():
    _, checked, _ = compile_to_ir("BEGIN { $a = (int8[])12345; @x = $a[1]; @k[$a] = (1, $a); }")
    array = T.ArrayType(T.IntType(1, True), 8)
    assert {b.type for b in checked.variables.values()} == {array}
    assert checked.maps["@k"].key == (array,)
    assert checked.maps["@k"].value == T.TupleType((T.IntType(8, True), array))


@pytest.mark.parametrize("source, message", [
    ('BEGIN { let $t: string[2] = "abc"; }',
     "Type mismatch for $t: trying to assign value of type 'string[4]' when variable already "
     "has a type 'string[2]'"),
    ("BEGIN { let $t: struct task_struct; }",
     "struct task_struct takes 3264 bytes, more than the 256 a variable on the BPF stack can "
     "have: declare a pointer to it"),
    ("BEGIN { let $t: uint8[]; }", "A declared array needs its size: uint8[N]"),
    ("BEGIN { let $t: string[0]; }", "A string needs at least one byte, not 0"),
])
def test_typed_declarations_refused(source, message):
    assert error_of(source).split("\n")[0].split("ERROR: ")[1] == message
