"""Map and event printing against golden files that bpftrace 0.17 printed for the same data.

Each case is a list of observations per map: the test aggregates them into the entries a map reader
would return, and the same observations become a bpftrace BEGIN script. The goldens in golden/ are
that script's output (text: everything after "Attaching 1 probe..."; JSON: the map lines, without the
two blank lines bpftrace 0.17 prints before them even in JSON mode).

The tests need no bpftrace. With bpftrace installed and root, check the goldens against it with
    PYBPF_BPFTRACE_GOLDEN=check python3 -m pytest tests/runtime/test_output.py
or rewrite them from it with PYBPF_BPFTRACE_GOLDEN=capture.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from pybpf import types as T
from pybpf.mapkinds import LhistParams, Stats
from pybpf.program import MapKind, MapSpec
from pybpf.runtime.output import JsonOutput, TextOutput, make_output
from pybpf.runtime.values import decode

GOLDEN = Path(__file__).parent / "golden"
PROBE = object()          # the `probe` builtin as a key part; BEGIN in these scripts


@dataclass
class Map:
    name: str
    kind: MapKind
    observations: list[tuple[tuple, object]]     # (key, argument) per statement, in order
    lhist: LhistParams | None = None
    reset: str | None = None                     # "clear" or "zero": called after the statements

    @property
    def spec(self) -> MapSpec:
        key = self.observations[0][0]
        value = self.observations[0][1] if self.kind is MapKind.VALUE else 0
        return MapSpec(self.name, "AT_" + self.name[1:], self.kind, tuple(map(_type_of, key)),
                       _type_of(value), self.lhist)

    def entries(self) -> list[tuple[tuple, object]]:
        """What a map reader returns after these statements ran, in arbitrary (hash) order."""
        aggregated: dict[tuple, object] = {}
        for key, arg in self.observations:
            key = tuple("BEGIN" if part is PROBE else part for part in key)
            aggregated[key] = _aggregate(self, aggregated.get(key), arg)
        if self.reset == "clear":
            return []
        if self.reset == "zero":
            return [(key, _zero(value)) for key, value in reversed(aggregated.items())]
        return list(reversed(aggregated.items()))

    def script(self) -> str:
        statements = [f"{self.name}{_key_expr(key)} = {_call(self, arg)};"
                      for key, arg in self.observations]
        if self.reset:
            statements.append(f"{self.reset}({self.name});")
        return " ".join(statements)


def _type_of(value) -> T.Type:
    if value is PROBE:
        return T.ProbeType()
    if isinstance(value, str):
        return T.StringType()
    if isinstance(value, tuple):
        return T.TupleType(tuple(map(_type_of, value)))
    return T.IntType()


def _aggregate(m: Map, old, arg):
    kind = m.kind
    if kind is MapKind.VALUE:
        return arg
    if kind is MapKind.COUNT:
        return (old or 0) + 1
    if kind is MapKind.SUM:
        return (old or 0) + arg
    if kind is MapKind.MIN:
        return arg if old is None else min(old, arg)
    if kind is MapKind.MAX:
        return arg if old is None else max(old, arg)
    if kind in (MapKind.AVG, MapKind.STATS):
        old = old or Stats(0, 0)
        return Stats(old.count + 1, old.total + arg)
    counts = dict(old or {})
    index = _hist_index(arg) if kind is MapKind.HIST else _lhist_index(arg, m.lhist)
    counts[index] = counts.get(index, 0) + 1
    return counts


def _zero(value):
    if isinstance(value, dict):
        return dict.fromkeys(value, 0)      # zero() keeps every bucket's key
    return Stats(0, 0) if isinstance(value, Stats) else 0


def _hist_index(v: int) -> int:
    return 0 if v < 0 else v + 1 if v < 2 else v.bit_length() + 1


def _lhist_index(v: int, p: LhistParams) -> int:
    if v < p.min:
        return 0
    if v >= p.max:
        return p.buckets + 1
    return (v - p.min) // p.step + 1


def _literal(value) -> str:
    if value is PROBE:
        return "probe"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_literal, value)) + ")"
    return str(value)


def _key_expr(key: tuple) -> str:
    return "[" + ", ".join(map(_literal, key)) + "]" if key else ""


def _call(m: Map, arg) -> str:
    if m.kind is MapKind.VALUE:
        return _literal(arg)
    if m.kind is MapKind.COUNT:
        return "count()"
    if m.kind is MapKind.LHIST:
        return f"lhist({arg}, {m.lhist.min}, {m.lhist.max}, {m.lhist.step})"
    return f"{m.kind.value}({arg})"


def repeat(key: tuple, values: list[int]) -> list[tuple[tuple, object]]:
    return [(key, v) for v in values]


CASES: dict[str, list[Map]] = {
    "count_scalar": [Map("@c", MapKind.COUNT, repeat((), [0, 0, 0]))],
    "count_multipart_key": [Map("@c", MapKind.COUNT, [
        ((1, "b"), 0), ((1, "b"), 0), ((2, "a"), 0), ((2, "a"), 0), ((2, "a"), 0),
        ((1, "a"), 0), ((1, "a"), 0), ((1, "a"), 0), ((1, "a"), 0), ((3, "z"), 0)])],
    "count_probe_key": [Map("@", MapKind.COUNT, [((PROBE,), 0)] * 2)],
    "sum_negative": [Map("@s", MapKind.SUM, [
        ((-1,), 5), ((3,), 4), ((2,), -7), ((2,), 1), ((7,), 0)])],
    "sum_scalar_negative": [Map("@x", MapKind.SUM, [((), -2), ((), -40)])],
    "min_keyed": [Map("@n", MapKind.MIN, [
        (("a",), -4), (("a",), 9), (("b",), 3), (("c",), 100), (("c",), 0)])],
    "max_keyed": [Map("@m", MapKind.MAX, [((1,), 5), ((2,), 17), ((2,), 3), ((3,), 0)])],
    "value_int_scalar": [Map("@x", MapKind.VALUE, [((), 7), ((), -42)])],
    "value_int_keyed": [Map("@x", MapKind.VALUE, [
        (("b",), 20), (("a",), 10), (("c",), -5)])],
    # Maps of strings sort by key.
    "value_str": [Map("@s", MapKind.VALUE, [
        (("b",), "zz"), (("a",), "yy"), (("c",), "aa"), (("d",), "")])],
    "value_tuple": [Map("@t", MapKind.VALUE, [
        ((1, "x"), (1, "q")), ((1, "a"), (2, "r")), ((0, "z"), (3, "s"))])],
    "value_tuple_scalar": [Map("@t", MapKind.VALUE, [((), (1, ("a", -2)))])],
    "escapes": [Map("@w", MapKind.VALUE, [(('x"y\\z',), "s\tq"), (("n\nl",), 'q"')])],
    "avg_scalar": [Map("@a", MapKind.AVG, repeat((), [4, 5, 7]))],
    # avg and stats truncate toward zero: -11 / 2 is -5.
    "avg_keyed": [Map("@a", MapKind.AVG, [((1,), 4), ((2,), -10), ((2,), -1), ((3,), 100)])],
    "stats_scalar": [Map("@s", MapKind.STATS, repeat((), [3, 20, 40]))],
    "stats_keyed": [Map("@s", MapKind.STATS, [
        (("x",), 3), (("y",), -10), (("y",), -1), (("z",), 0)])],
    # Negative bucket, empty buckets in the middle, bars scaled to the largest bucket.
    "hist_scalar": [Map("@h", MapKind.HIST,
                        repeat((), [-1, 0, 0, 1] + [5] * 13 + [6] * 7 + [100] * 3 + [1000]))],
    "hist_keyed": [Map("@h", MapKind.HIST,
                       repeat((1, "a"), [1, 2, 3]) + repeat((2, "b"), [0, 0])
                       + repeat((0, "c"), [-5, -5, -5, -5]))],
    # Buckets from [2G, 4G) on are tested below: bpftrace 0.17 puts every value from 2^32 up into
    # [2G, 4G) (a 32-bit log2) and prints that bucket's JSON bounds as 32-bit ints.
    "hist_suffixes": [Map("@h", MapKind.HIST, repeat((), [
        1023, 1024, 2047, 5000, 1 << 20, (1 << 20) + 1, 3 << 29, 1 << 30, (1 << 31) - 1]))],
    "lhist_scalar": [Map("@l", MapKind.LHIST, repeat((), [-5, 55, 55, 150, 0, 99]),
                         LhistParams(0, 100, 10))],
    "lhist_inner": [Map("@l", MapKind.LHIST, repeat((), [23, 27, 41]), LhistParams(0, 100, 10))],
    # bpftrace allows no negative min; values below min share the first bucket.
    "lhist_offset_range": [Map("@l", MapKind.LHIST, repeat((), [-3, 0, 49, 50, 74, 75, 149, 150, 1000]),
                               LhistParams(50, 150, 25))],
    "lhist_suffixes": [Map("@l", MapKind.LHIST, repeat((), [0, 1024, 3000, 4096, 9000, 1 << 21]),
                           LhistParams(0, 8192, 1024))],
    "lhist_mega": [Map("@l", MapKind.LHIST, repeat((), [1 << 20, 5 << 20, 1 << 30]),
                       LhistParams(0, 4 << 20, 1 << 20))],
    "lhist_keyed": [Map("@l", MapKind.LHIST,
                        repeat(("bash",), [1, 2, 3, 30]) + repeat(("sshd",), [200]),
                        LhistParams(0, 100, 10))],
    # An empty map still ends in its newline (two for avg/stats); in JSON it prints nothing.
    "cleared_maps": [
        Map("@c", MapKind.COUNT, [((1,), 0)], reset="clear"),
        Map("@h", MapKind.HIST, repeat((), [5]), reset="clear"),
        Map("@s", MapKind.STATS, repeat((), [1]), reset="clear"),
    ],
    "zeroed_maps": [
        Map("@a", MapKind.AVG, repeat((), [3]), reset="zero"),
        Map("@c", MapKind.COUNT, [((1,), 0)], reset="zero"),
        Map("@h", MapKind.HIST, repeat((), [5]), reset="zero"),
        Map("@k", MapKind.HIST, repeat((1,), [5]) + repeat((2,), [7]), reset="zero"),
    ],
    # At exit maps print by name, each with its own trailing layout.
    "several_maps": [
        Map("@b", MapKind.HIST, repeat((), [3, 9])),
        Map("@", MapKind.COUNT, [((), 0)]),
        Map("@c", MapKind.STATS, repeat((), [1, 2])),
        Map("@a", MapKind.COUNT, [(("k",), 0), (("j",), 0), (("j",), 0)]),
        Map("@d", MapKind.AVG, repeat((), [6])),
        Map("@e", MapKind.SUM, repeat((1,), [6])),
    ],
}


def render(fmt: str, maps: list[Map]) -> str:
    stream = io.StringIO()
    make_output(fmt, stream).maps_at_exit([(m.spec, m.entries()) for m in maps])
    return stream.getvalue()


def golden_path(case: str, fmt: str) -> Path:
    return GOLDEN / f"{case}_{fmt}.txt"


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_maps_match_golden(case, fmt):
    assert render(fmt, CASES[case]) == golden_path(case, fmt).read_text()


def run_bpftrace(fmt: str, maps: list[Map]) -> str:
    script = "BEGIN { " + " ".join(m.script() for m in maps) + " exit(); }"
    out = subprocess.run(["bpftrace", "-f", fmt, "-e", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    first, rest = out.split("\n", 1)
    assert "1 probe" in first or "probes\": 1" in first, out
    return rest if fmt == "text" else rest.removeprefix("\n\n")


BPFTRACE_MODE = os.environ.get("PYBPF_BPFTRACE_GOLDEN")


@pytest.mark.skipif(BPFTRACE_MODE not in ("check", "capture") or not shutil.which("bpftrace")
                    or os.geteuid() != 0,
                    reason="set PYBPF_BPFTRACE_GOLDEN=check|capture, as root with bpftrace installed")
@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_is_what_bpftrace_prints(case, fmt):
    printed = run_bpftrace(fmt, CASES[case])
    if BPFTRACE_MODE == "capture":
        GOLDEN.mkdir(exist_ok=True)
        golden_path(case, fmt).write_text(printed)
    assert printed == golden_path(case, fmt).read_text()


# --- where pybpf follows current bpftrace, not 0.17's bugs ---------------------------------------------

def text_of(spec: MapSpec, entries) -> str:
    stream = io.StringIO()
    TextOutput(stream).map(spec, entries)
    return stream.getvalue()


def json_of(spec: MapSpec, entries) -> str:
    stream = io.StringIO()
    JsonOutput(stream).map(spec, entries)
    return stream.getvalue()


def hist_spec(kind=MapKind.HIST, key=(), lhist=None) -> MapSpec:
    return MapSpec("@h", "AT_h", kind, key, T.IntType(), lhist)


def test_ties_fall_back_to_key_order():
    # bpftrace 0.17 orders equal values as its hash table iterates; pybpf by key, integer parts
    # compared as unsigned 64-bit like bpftrace's key sort, so -1 comes last.
    spec = MapSpec("@x", "AT_x", MapKind.COUNT, (T.IntType(), T.StringType()), T.IntType())
    entries = [((-1, "a"), 5), ((3, "b"), 5), ((3, "a"), 5), ((9, "z"), 1)]
    assert text_of(spec, entries) == "@x[9, z]: 1\n@x[3, a]: 5\n@x[3, b]: 5\n@x[-1, a]: 5\n"


def test_max_of_negative_values():
    # bpftrace 0.17 drops max() entries whose value is negative; current bpftrace prints them.
    spec = MapSpec("@m", "AT_m", MapKind.MAX, (T.IntType(),), T.IntType())
    assert text_of(spec, [((1,), -3), ((2,), 5)]) == "@m[1]: -3\n@m[2]: 5\n"


def test_hist_buckets_from_2G_up():
    # bpftrace 0.17 cannot reach these (32-bit log2) and stops its suffixes at T; current bpftrace
    # labels every power of 1024 up to E.
    buckets = {33: 1, 44: 2, 54: 1, 64: 4}
    text = text_of(hist_spec(), [((), buckets)]).splitlines()
    assert [line[:16].rstrip() for line in text[1:]][::10] == [
        "[2G, 4G)", "[2T, 4T)", "[2P, 4P)", "[2E, 4E)"]
    assert text[-2] == "[4E, 8E)" + " " * 15 + "4 |" + "@" * 52 + "|"
    assert json_of(hist_spec(), [((), {33: 1})]) == (
        '{"type": "hist", "data": {"@h": [{"min": 2147483648, "max": 4294967295, "count": 1}]}}\n')


def test_lhist_bounds_keep_digits_unless_the_step_is_a_multiple_of_1024():
    # bpftrace 0.17 printed [1K, 1536) here; current bpftrace prints the number.
    spec = hist_spec(MapKind.LHIST, lhist=LhistParams(0, 2048, 512))
    assert text_of(spec, [((), {3: 1})]).splitlines()[1].startswith("[1024, 1536) ")


def test_json_keeps_utf8_characters():
    # bpftrace 0.17 escaped each byte of a UTF-8 sequence as \uffffffXX.
    stream = io.StringIO()
    JsonOutput(stream).printf("é\u0001\n")
    assert stream.getvalue() == '{"type": "printf", "data": "é\\u0001\\n"}\n'


def test_json_output_has_no_blank_lines_before_the_maps():
    # bpftrace 0.17 prints two blank lines before the maps at exit even with -f json.
    stream = io.StringIO()
    JsonOutput(stream).maps_at_exit([])
    assert stream.getvalue() == ""


# --- events ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,call,expected", [
    ("text", lambda o: o.attached(1), "Attaching 1 probe...\n"),
    ("text", lambda o: o.attached(3), "Attaching 3 probes...\n"),
    ("json", lambda o: o.attached(2), '{"type": "attached_probes", "count": 2, "data": {"probes": 2}}\n'),
    ("text", lambda o: o.printf("a\tb"), "a\tb"),
    ("json", lambda o: o.printf('a"b\\c\td\x01e\n'),
     '{"type": "printf", "data": "a\\"b\\\\c\\td\\u0001e\\n"}\n'),
    # From bpftrace's output.cpp; a lost-event count is hard to provoke on purpose.
    ("text", lambda o: o.lost(7), "Lost 7 events\n"),
    ("json", lambda o: o.lost(7), '{"type": "lost_events", "count": 7, "data": {"events": 7}}\n'),
    # bpftrace 0.26's errorf/warnf records (src/output/json.cpp): the message and where the call is
    ("json", lambda o: o.located("errorf", "a.bt:3:9-20: ERROR: bad\n\"x\"", print),
     '{"type": "errorf", "msg": "bad\\n\\"x\\"", "filename": "a.bt", "line": 3, "col": 9}\n'),
    ("json", lambda o: o.located("warnf", "stdin:1:2-5: WARNING: w", print),
     '{"type": "warnf", "msg": "w", "filename": "stdin", "line": 1, "col": 2}\n'),
    ("json", lambda o: o.value((2 ** 53, 2 ** 53 + 1, -(2 ** 63), 2 ** 64 - 16)),
     '{"type": "value", "data": [9007199254740992,"9007199254740993",-9223372036854775808,'
     '"18446744073709551600"]}\n'),
])
def test_events(fmt, call, expected):
    stream = io.StringIO()
    call(make_output(fmt, stream))
    assert stream.getvalue() == expected


def test_text_errorf_and_warnf_go_where_the_session_says():
    stream, written = io.StringIO(), []
    make_output("text", stream).located("errorf", "stdin:1:2-5: ERROR: bad", written.append)
    assert written == ["stdin:1:2-5: ERROR: bad"] and stream.getvalue() == ""


def test_json_integer_map_values_a_double_cannot_hold_are_strings():
    stream = io.StringIO()
    spec = MapSpec("@m", "AT_m", MapKind.VALUE, (T.IntType(8, False),), T.IntType(8, False))
    JsonOutput(stream).map(spec, [((1,), 2 ** 64 - 1), ((2,), 5)])
    assert stream.getvalue() == '{"type": "map", "data": {"@m": {"2": 5, "1": "18446744073709551615"}}}\n'


class RecordingStream(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushed_at = []

    def flush(self):
        self.flushed_at.append(self.tell())


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_event_is_flushed(fmt):
    stream = RecordingStream()
    out = make_output(fmt, stream)
    out.attached(1)
    out.printf("x")
    assert stream.flushed_at == [len(stream.getvalue().splitlines(keepends=True)[0]),
                                 len(stream.getvalue())]


def test_broken_pipe_reaches_the_caller():
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        make_output("text", ClosedPipe()).printf("x\n")


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown output format 'yaml'"):
        make_output("yaml", io.StringIO())


# --- fast paths against the general rule ----------------------------------------------------------------

def _reference_text(spec: MapSpec, entries) -> str:
    """The rule the fast paths must keep: by key (integer parts as unsigned 64-bit), then stably by
    value for integer values; every part through text_of."""
    from pybpf.runtime.values import text_of as text

    def order(part):
        return part & ((1 << 64) - 1) if isinstance(part, int) else tuple(map(order, part)) \
            if isinstance(part, tuple) else part
    ordered = sorted(entries, key=lambda e: tuple(map(order, e[0])))
    if spec.kind is not MapKind.VALUE or isinstance(spec.value, T.IntType):
        ordered = sorted(ordered, key=lambda e: e[1])
    lines = [f"{spec.name}{'[' + ', '.join(map(text, k)) + ']' if k else ''}: {text(v)}\n" for k, v in ordered]
    return "".join(lines) or "\n"


def _reference_json(spec: MapSpec, entries) -> str:
    from pybpf.runtime.output import _json_key, _json_value, _sorted_entries
    body = ", ".join(f"{_json_key(k)}: {_json_value(v)}" for k, v in _sorted_entries(spec, entries))
    return f'{{"type": "map", "data": {{"{spec.name}": {{{body}}}}}}}\n'


U64 = T.IntType(8, False)
KEY_CASES = {
    "signed, negatives": ((T.IntType(),), lambda r: (r.randrange(-50, 50),)),
    "signed, none negative": ((T.IntType(),), lambda r: (r.randrange(0, 100),)),
    "unsigned, past 2^63": ((U64,), lambda r: (r.choice([0, 5, 1 << 63, (1 << 64) - 1, r.randrange(1 << 64)]),)),
    "two ints, negatives": ((T.IntType(), T.IntType(4, True)), lambda r: (r.randrange(-3, 3), r.randrange(-3, 3))),
    "two ints, none negative": ((U64, U64), lambda r: (r.randrange(4), r.randrange(4))),
    "int and string": ((T.IntType(), T.StringType()), lambda r: (r.randrange(-2, 2), r.choice("ab"))),
    "string": ((T.StringType(),), lambda r: (r.choice(["x", "y", "z,w"]),)),
}


@pytest.mark.parametrize("kind", [MapKind.COUNT, MapKind.SUM, MapKind.MIN, MapKind.MAX, MapKind.VALUE])
@pytest.mark.parametrize("case", sorted(KEY_CASES))
def test_fast_paths_print_as_the_general_rule(case, kind):
    import random
    key_types, make_key = KEY_CASES[case]
    spec = MapSpec("@m", "AT_m", kind, key_types, T.IntType())
    r = random.Random(case + kind.value)
    for size in (1, 2, 50, 300):
        keyed = {make_key(r): r.randrange(-3, 4) for _ in range(size)}   # few values: many ties
        entries = list(keyed.items())
        assert text_of(spec, entries) == _reference_text(spec, entries)
        assert json_of(spec, entries) == _reference_json(spec, entries)
    assert text_of(spec, []) == "\n" and json_of(spec, []) == ""


def test_negative_keys_print_after_the_others_in_unsigned_order():
    spec = MapSpec("@x", "AT_x", MapKind.COUNT, (T.IntType(),), T.IntType())
    entries = [((-1,), 2), ((5,), 2), ((-7,), 2), ((0,), 2), ((3,), 1), ((-2,), 1)]
    assert text_of(spec, entries) == ("@x[3]: 1\n@x[-2]: 1\n@x[0]: 2\n@x[5]: 2\n@x[-7]: 2\n@x[-1]: 2\n")
    assert json_of(spec, entries) == (
        '{"type": "map", "data": {"@x": {"3": 1, "-2": 1, "0": 2, "5": 2, "-7": 2, "-1": 2}}}\n')
    spec2 = MapSpec("@x", "AT_x", MapKind.COUNT, (T.IntType(), T.IntType()), T.IntType())
    assert json_of(spec2, [((1, -1), 1), ((1, 2), 1)]) == '{"type": "map", "data": {"@x": {"1,2": 1, "1,-1": 1}}}\n'


def test_string_and_tuple_values_print_by_key():
    spec = MapSpec("@s", "AT_s", MapKind.VALUE, (T.IntType(),), T.StringType())
    assert text_of(spec, [((-1,), "a"), ((2,), "b"), ((1,), "c")]) == "@s[1]: c\n@s[2]: b\n@s[-1]: a\n"
    pair = T.TupleType((T.IntType(), T.StringType()))
    spec = MapSpec("@t", "AT_t", MapKind.VALUE, (pair,), pair)
    assert text_of(spec, [(((1, "b"),), (2, "x")), (((-1, "a"),), (1, "y")), (((1, "a"),), (3, "z"))]) == (
        "@t[(1, a)]: (3, z)\n@t[(1, b)]: (2, x)\n@t[(-1, a)]: (1, y)\n")


def test_kernel_strings_that_are_not_utf8_are_bytes_in_text_and_xNN_in_json():
    from pybpf.runtime.values import decode_string
    text = decode_string(b"caf\xe9\xc3\xa9\0junk")
    assert text.encode("utf-8", "surrogateescape") == b"caf\xe9\xc3\xa9"
    plain, as_json = io.StringIO(), io.StringIO()
    TextOutput(plain).printf(text + "\n")
    JsonOutput(as_json).printf(text + "\n")
    assert plain.getvalue().encode("utf-8", "surrogateescape") == b"caf\xe9\xc3\xa9\n"
    assert as_json.getvalue() == '{"type": "printf", "data": "caf\\\\xe9\xe9\\n"}\n'
    assert json.loads(as_json.getvalue())["data"] == "caf\\xe9\xe9\n"


def test_arrays_print_as_bpftrace_prints_them():
    # bpftrace writes an array as [a,b,...], no spaces, in keys, values and tuples alike.
    array = T.ArrayType(T.IntType(1, False), 4)
    spec = MapSpec("@a", "AT_a", MapKind.VALUE, (array, T.IntType()), T.TupleType((T.IntType(), array)))
    raw = bytes([4, 3, 2, 1]) + bytes(4)
    key = decode(array, raw)
    assert text_of(spec, [((key, 2), (1, key))]) == "@a[[4,3,2,1], 2]: (1, [4,3,2,1])\n"
    assert json_of(spec, [((key, 2), (1, key))]) == \
        '{"type": "map", "data": {"@a": {"[4,3,2,1],2": [1,[4,3,2,1]]}}}\n'


def test_structs_print_as_bpftrace_prints_them():
    # { .name = value, ... } in text (pointer members in hex), an object in JSON.
    inner = T.StructType("struct in", (("x", 0, T.IntType(2, True)),), 2)
    outer = T.StructType("struct out", (("p", 0, T.FormattedType("pointer")), ("i", 8, inner),
                                        ("s", 10, T.StringType(4))), 16)
    raw = (0xffff8881).to_bytes(8, "little") + (-2).to_bytes(2, "little", signed=True) + b"ab\0\0" + bytes(2)
    value = decode(outer, raw)
    spec = MapSpec("@s", "AT_s", MapKind.VALUE, (), outer)
    assert text_of(spec, [((), value)]) == "@s: { .p = 0xffff8881, .i = { .x = -2 }, .s = ab }\n"
    assert json_of(spec, [((), value)]) == \
        '{"type": "map", "data": {"@s": {"p": "0xffff8881", "i": {"x": -2}, "s": "ab"}}}\n'


def test_records_decode_to_named_tuples_and_print_as_bpftrace_prints_them():
    # { .name = value, ... } in text, as structs; an object of the fields, in order, in JSON.
    inner = T.TupleType((T.IntType(), T.StringType(4)), ("n", "s"))
    record = T.TupleType((T.IntType(), T.TupleType((T.IntType(), T.IntType())), inner), ("a", "d", "e"))
    raw = (7).to_bytes(8, "little") + (5).to_bytes(8, "little") + (6).to_bytes(8, "little") + \
        (-1).to_bytes(8, "little", signed=True) + b"ab\0\0" + bytes(4)
    value = decode(record, raw)
    assert value == (7, (5, 6), (-1, "ab")) and value.a == 7 and value.e.s == "ab"
    assert value._asdict() == {"a": 7, "d": (5, 6), "e": (-1, "ab")}
    assert type(value) is type(decode(record, raw))          # one class per list of names
    spec = MapSpec("@r", "AT_r", MapKind.VALUE, (inner,), record)
    key = value.e
    assert text_of(spec, [((key,), value)]) == \
        "@r[{ .n = -1, .s = ab }]: { .a = 7, .d = (5, 6), .e = { .n = -1, .s = ab } }\n"
    assert json_of(spec, [((key,), value)]) == ('{"type": "map", "data": {"@r": {"{ .n = -1, .s = ab }": '
                                                '{"a": 7, "d": [5,6], "e": {"n": -1, "s": "ab"}}}}}\n')


def test_record_fields_python_refuses_keep_their_names_in_print():
    from pybpf.runtime.values import record_class, text_of as value_text
    value = record_class(("from", "_x", "ok"))._make((1, 2, 3))
    assert value._fields == ("_0", "_1", "ok") and value.ok == 3
    assert value_text(value) == "{ .from = 1, ._x = 2, .ok = 3 }"


def test_bools_print_true_and_false():
    spec = MapSpec("@b", "AT_b", MapKind.VALUE, (T.IntType(8, False, True), T.IntType()),
                   T.TupleType((T.IntType(8, False, True),)))
    key = (decode(spec.key[0], (1).to_bytes(8, "little")), 2)
    value = (decode(spec.key[0], bytes(8)),)
    assert key[0] is True and value == (False,)
    assert text_of(spec, [(key, value)]) == "@b[true, 2]: (false)\n"
    assert json_of(spec, [(key, value)]) == '{"type": "map", "data": {"@b": {"true,2": [false]}}}\n'


def test_pointers_print_in_hex():
    ptr = T.PointerType(0, "struct sock *")
    value = decode(ptr, (0xffff888100000000).to_bytes(8, "little"))
    spec = MapSpec("@p", "AT_p", MapKind.VALUE, (ptr,), ptr)
    assert text_of(spec, [((value,), value)]) == "@p[0xffff888100000000]: 0xffff888100000000\n"
    assert json_of(spec, [((value,), value)]) == \
        '{"type": "map", "data": {"@p": {"0xffff888100000000": "0xffff888100000000"}}}\n'
    assert T.from_json(T.to_json(ptr)) == ptr
