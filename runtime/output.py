"""Printing events and maps the way bpftrace 0.17 prints them, as text or as one JSON object per line.

    out = make_output("text", sys.stdout)
    out.attached(1)                                   # Attaching 1 probe...
    out.printf("hello\\n")                            # hello
    out.map(spec, [(("bash",), 12), (("sshd",), 3)])  # @[sshd]: 3 / @[bash]: 12
    out.maps_at_exit([(spec, entries), ...])          # two blank lines, then every map by name

Entries are what the map readers return: `(key_tuple, value)` with `()` as the key of a scalar map and
the value an int, str, tuple, `Stats` or `{bucket_index: count}` by the map's kind. Every call writes
its text in one piece and flushes, so output piped to another program is never held back; a
BrokenPipeError goes to the caller.

Keyed maps print sorted by value, ascending (hist maps by their total count, avg and stats maps by their
average, maps of strings and tuples by key), ties by key; integer key parts compare as unsigned 64-bit,
as bpftrace compares the raw key bytes.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import itemgetter
from typing import Callable, Iterable, TextIO

from pybpf import types as T
from pybpf.program import LhistParams, MapKind, MapSpec
from pybpf.runtime.values import Pointer, Struct, text_of

Entries = list[tuple[tuple, object]]

BAR_WIDTH = 52
_UNSIGNED = (1 << 64) - 1
_BARS = ["@" * n + " " * (BAR_WIDTH - n) for n in range(BAR_WIDTH + 1)]
_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")     # one per power of 1024

# bpftrace's JSON escaping: the two JSON metacharacters, \n \r \t by name, other control bytes as \u00XX.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
_JSON_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                      ord("\t"): "\\t"})
# A byte of a kernel string that is not UTF-8 (a lone surrogate from decode_string) as the text
# `\xNN`: JSON holds only Unicode text, and this keeps the byte's value visible.
_JSON_ESCAPES.update({0xDC00 + byte: f"\\\\x{byte:02x}" for byte in range(0x80, 0x100)})

_STATS_KINDS = (MapKind.AVG, MapKind.STATS)


class Output:
    EXIT_SEPARATOR = ""     # printed before the maps at exit

    def __init__(self, stream: TextIO, *, quiet: bool = False, flush_each: bool = True):
        self.stream = stream
        self.quiet = quiet              # -q: no "Attaching N probes..." (nor its JSON record)
        self.flush_each = flush_each    # -B full: False, the stream's buffer decides

    def _emit(self, text: str) -> None:
        self.stream.write(text)
        if self.flush_each:
            self.stream.flush()


    def maps_at_exit(self, maps: Iterable[tuple[MapSpec, Entries]]) -> None:
        """What bpftrace prints when the program ends: every map, ordered by name."""
        self._emit(self.EXIT_SEPARATOR)
        for spec, entries in sorted(maps, key=lambda m: m[0].name):
            self.map(spec, entries)

    def attached(self, probes: int) -> None:
        if not self.quiet:
            self._emit(self._attached_text(probes))

    def _attached_text(self, probes: int) -> str:
        raise NotImplementedError

    def printf(self, text: str) -> None:
        raise NotImplementedError

    def value(self, value) -> None:
        """print(value) of a value that is not a map."""
        raise NotImplementedError

    def time(self, text: str) -> None:
        """time(FMT): the formatted local time."""
        raise NotImplementedError

    def syscall(self, text: str) -> None:
        """system(CMD): what the command printed (bpftrace's "syscall" message)."""
        raise NotImplementedError

    def join(self, text: str) -> None:
        """join(argv, sep): the strings joined, a line of its own."""
        raise NotImplementedError

    def map(self, spec: MapSpec, entries: Entries) -> None:
        raise NotImplementedError

    def lost(self, events: int) -> None:
        raise NotImplementedError


class TextOutput(Output):
    EXIT_SEPARATOR = "\n\n"      # bpftrace's; the JSON output leaves it out to stay one object per line

    def _attached_text(self, probes: int) -> str:
        return f"Attaching {probes} probe{'' if probes == 1 else 's'}...\n"

    def printf(self, text: str) -> None:
        self._emit(text)

    def value(self, value) -> None:
        self._emit(text_of(value) + "\n")

    def time(self, text: str) -> None:
        self._emit(text)

    def syscall(self, text: str) -> None:
        self._emit(text)

    def join(self, text: str) -> None:
        self._emit(text + "\n")

    def lost(self, events: int) -> None:
        self._emit(f"Lost {events} events\n")

    def map(self, spec: MapSpec, entries: Entries) -> None:
        # Every map ends in a newline of its own (an empty map prints just that); hist maps leave a
        # blank line after each key, and avg/stats maps one after the whole map.
        name = spec.name
        out = []
        if spec.kind.has_buckets:
            buckets = _bucket_layout(spec)
            for key, counts in _sorted_entries(spec, entries):
                out.append(f"{name}{_text_key(key)}: \n")
                out.extend(_text_hist(counts, buckets))
                out.append("\n")
            out.append("" if entries else "\n")
        else:
            ordered = _sorted_entries(spec, entries)
            plain_values = _plain_values(spec)
            if plain_values and _int_keys(spec) == 1:
                # The common @[pid] = count(): str() of both ints, nothing else per line.
                out.extend([f"{name}[{key}]: {value}\n" for (key,), value in ordered])
            elif plain_values and not _has_tuple(spec.key):
                out.extend([f"{name}[{', '.join(map(str, key))}]: {value}\n" if key else f"{name}: {value}\n"
                            for key, value in ordered])
            else:
                render = _text_value(spec)
                out.extend(f"{name}{_text_key(key)}: {render(value)}\n" for key, value in ordered)
            out.append(("" if entries else "\n") + ("\n" if spec.kind in _STATS_KINDS else ""))
        self._emit("".join(out))


class JsonOutput(Output):
    def _attached_text(self, probes: int) -> str:
        return f'{{"type": "attached_probes", "data": {{"probes": {probes}}}}}\n'

    def printf(self, text: str) -> None:
        self._emit(f'{{"type": "printf", "data": {_json_str(text)}}}\n')

    def value(self, value) -> None:
        self._emit(f'{{"type": "value", "data": {_json_value(value)}}}\n')

    def time(self, text: str) -> None:
        self._emit(f'{{"type": "time", "data": {_json_str(text)}}}\n')

    def syscall(self, text: str) -> None:
        self._emit(f'{{"type": "syscall", "data": {_json_str(text)}}}\n')

    def join(self, text: str) -> None:
        self._emit(f'{{"type": "join", "data": {_json_str(text)}}}\n')

    def lost(self, events: int) -> None:
        self._emit(f'{{"type": "lost_events", "data": {{"events": {events}}}}}\n')

    def map(self, spec: MapSpec, entries: Entries) -> None:
        if not entries:
            return      # bpftrace prints nothing at all for an empty map in JSON
        if spec.kind.has_buckets:
            kind, render = "hist", _json_hist_renderer(_bucket_layout(spec))
        elif spec.kind in _STATS_KINDS:
            kind, render = "stats", _json_stats if spec.kind is MapKind.STATS else _json_average
        else:
            kind, render = "map", _json_value
        ordered = _sorted_entries(spec, entries)
        if spec.key and _int_keys(spec) and _plain_values(spec) is int:
            # Integer keys and values need no escaping: str() of each, as text_of would give.
            if len(spec.key) == 1:
                body = "{" + ", ".join([f'"{key}": {value}' for (key,), value in ordered]) + "}"
            else:
                body = "{" + ", ".join([f'"{",".join(map(str, key))}": {value}' for key, value in ordered]) + "}"
        elif spec.key:
            body = "{" + ", ".join(f"{_json_key(key)}: {render(value)}" for key, value in ordered) + "}"
        else:
            body = render(ordered[0][1])
        self._emit(f'{{"type": "{kind}", "data": {{{_json_str(spec.name)}: {body}}}}}\n')


def top_entries(spec: MapSpec, entries: Entries, top: int, div: int) -> Entries:
    """print(@m, top, div): integer values divided by div, rounded half away from zero (bpftrace
    0.26's example prints 5, 6, 7 divided by 2 as 3, 3, 4), then the `top` entries that print last
    (the greatest); top <= 0 keeps all, div <= 1 divides nothing."""
    if div > 1 and _plain_values(spec) is int:
        def scaled(value: int) -> int:
            magnitude = (abs(value) * 2 + div) // (2 * div)
            return magnitude if value >= 0 else -magnitude
        entries = [(key, scaled(value)) for key, value in entries]
    return _sorted_entries(spec, entries)[-top:] if top > 0 else entries


def make_output(fmt: str, stream: TextIO, *, quiet: bool = False, flush_each: bool = True) -> Output:
    """The Output that writes `fmt` ('text': bpftrace's text, 'json': one JSON object per line)
    to `stream`; quiet leaves out the attached line, flush_each=False leaves the flushing to the
    stream's buffer (-B full)."""
    if fmt == "text":
        return TextOutput(stream, quiet=quiet, flush_each=flush_each)
    if fmt == "json":
        return JsonOutput(stream, quiet=quiet, flush_each=flush_each)
    raise ValueError(f"unknown output format {fmt!r}: expected 'text' or 'json'")


# --- ordering ----------------------------------------------------------------------------------------

def _sorted_entries(spec: MapSpec, entries: Entries) -> Entries:
    by_key = _sorted_by_key(spec, entries)
    if spec.kind.has_buckets or spec.kind in _STATS_KINDS:
        sort_value = _sort_value(spec)
        return sorted(by_key, key=lambda e: sort_value(e[1]))
    if _plain_values(spec) is int:
        return sorted(by_key, key=_VALUE)    # stable: equal values keep their key order
    return by_key       # strings and tuples print by key


_KEY, _VALUE = itemgetter(0), itemgetter(1)


def _sorted_by_key(spec: MapSpec, entries: Entries) -> Entries:
    """Entries by key, integer parts compared as unsigned 64-bit."""
    parts = _int_keys(spec)
    if not parts or not entries:
        return sorted(entries, key=lambda e: _key_order(e[0]))
    # Keys of integers only: the key tuples compare as they are (in C) unless a part is negative.
    by_key = sorted(entries, key=_KEY)
    if by_key[0][0][0] >= 0 and (parts == 1 or min(map(min, map(_KEY, entries))) >= 0):
        return by_key
    if parts == 1:
        # As unsigned, the negative keys come after every other, in the same order among themselves.
        split = bisect_left(by_key, 0, key=lambda e: e[0][0])
        return by_key[split:] + by_key[:split]
    return sorted(entries, key=lambda e: _key_order(e[0]))


def _int_keys(spec: MapSpec) -> int:
    """The number of key parts when every one is an integer, else 0."""
    return len(spec.key) if spec.key and all(type(t) is T.IntType for t in spec.key) else 0


def _has_tuple(types) -> bool:
    return any(isinstance(t, (T.TupleType, T.ArrayType, T.StructType)) for t in types)   # not printed by str()


def _plain_values(spec: MapSpec) -> type | None:
    """int or str when the map's values are printed by str() alone (text_of's result for them),
    None for the others (tuples, Stats, hist counts)."""
    if spec.kind in (MapKind.COUNT, MapKind.SUM, MapKind.MIN, MapKind.MAX):
        return int
    if spec.kind is MapKind.VALUE:
        if type(spec.value) is T.IntType:
            return int
        if isinstance(spec.value, (T.StringType, T.ProbeType)):
            return str
    return None


def _sort_value(spec: MapSpec) -> Callable[[object], int] | None:
    if spec.kind.has_buckets:
        return lambda counts: sum(counts.values())
    if spec.kind in _STATS_KINDS:
        return lambda stats: stats.average
    if spec.kind is MapKind.VALUE and not isinstance(spec.value, T.IntType):
        return None
    return lambda value: value


def _key_order(key: tuple) -> tuple:
    return tuple(_part_order(part) for part in key)


def _part_order(part):
    if isinstance(part, int):
        return part & _UNSIGNED
    if isinstance(part, tuple):
        return _key_order(part)
    return part


# --- text --------------------------------------------------------------------------------------------

def _text_key(key: tuple) -> str:
    return "[" + ", ".join(map(text_of, key)) + "]" if key else ""


def _text_value(spec: MapSpec) -> Callable[[object], str]:
    if spec.kind is MapKind.AVG:
        return lambda stats: str(stats.average)
    if spec.kind is MapKind.STATS:
        return lambda s: f"count {s.count}, average {s.average}, total {s.total}"
    return text_of


def _text_hist(counts: dict[int, int], buckets: "_BucketLayout") -> list[str]:
    shown = [i for i, n in counts.items() if n > 0]
    if not shown:
        return []
    top, last = max(counts.values()), max(shown)
    prefixes, count = buckets.text_prefixes(last), counts.get
    # Integer arithmetic gives the same bar as bpftrace's float32 n / max * 52 for every count.
    return [f"{prefixes[i]}{n:>8} |{_BARS[n * BAR_WIDTH // top]}|\n"
            for i in range(min(shown), last + 1) for n in (count(i, 0),)]


# --- JSON --------------------------------------------------------------------------------------------

def _json_str(text: str) -> str:
    # bpftrace 0.17 also escapes every byte of a UTF-8 sequence as \uffffffXX (a sign-extension bug);
    # pybpf writes the characters as they are, as JSON allows.
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def _json_key(key: tuple) -> str:
    return _json_str(",".join(map(text_of, key)))


def _json_value(value) -> str:
    if isinstance(value, str):
        return _json_str(value)
    if isinstance(value, Pointer):
        return _json_str(str(value))
    if isinstance(value, Struct):
        return "{" + ", ".join(f"{_json_str(name)}: {_json_value(v)}" for name, v in value) + "}"
    if isinstance(value, tuple):
        return "[" + ",".join(map(_json_value, value)) + "]"
    return str(value)


def _json_average(stats) -> str:
    return str(stats.average)


def _json_stats(s) -> str:
    return f'{{"count": {s.count}, "average": {s.average}, "total": {s.total}}}'


def _json_hist_renderer(buckets: "_BucketLayout") -> Callable[[dict[int, int]], str]:
    def render(counts: dict[int, int]) -> str:
        shown = [i for i, n in counts.items() if n > 0]
        if not shown:
            return "[]"
        return "[" + ", ".join(f'{{{buckets.json_range(i)}"count": {counts.get(i, 0)}}}'
                               for i in range(min(shown), max(shown) + 1)) + "]"
    return render


# --- buckets -----------------------------------------------------------------------------------------

class _BucketLayout:
    """Labels of a hist or lhist map's buckets: `[4, 8)` in text, `"min": 4, "max": 7, ` in JSON.

    Bounds are (lo, hi) with hi exclusive; None marks the open end of the outermost buckets."""

    def __init__(self, bounds: Callable[[int], tuple[int | None, int | None]],
                 number: Callable[[int], str], singletons: bool):
        self.bounds = bounds
        self._number = number
        self._singletons = singletons      # hist: the buckets of 0 and 1 print as [0] and [1]
        # Big maps repeat the same few buckets for every key: render each one once.
        self._text_prefixes: dict[int, str] = {}
        self._prefix_list: list[str] = []
        self._json_ranges: dict[int, str] = {}

    def text_prefix(self, index: int) -> str:
        """The label left-justified in its 16 columns."""
        prefix = self._text_prefixes.get(index)
        if prefix is None:
            prefix = self._text_prefixes[index] = f"{self.label(index):<16}"
        return prefix

    def text_prefixes(self, last: int) -> list[str]:
        """text_prefix of every index up to `last`, as one list to index into."""
        prefixes = self._prefix_list
        if len(prefixes) <= last:
            prefixes.extend(self.text_prefix(i) for i in range(len(prefixes), last + 1))
        return prefixes

    def json_range(self, index: int) -> str:
        json_range = self._json_ranges.get(index)
        if json_range is None:
            lo, hi = self.bounds(index)
            json_range = self._json_ranges[index] = (
                ("" if lo is None else f'"min": {lo}, ') + ("" if hi is None else f'"max": {hi - 1}, '))
        return json_range

    def label(self, index: int) -> str:
        lo, hi = self.bounds(index)
        if lo is None:
            return f"(..., {self._number(hi)})"
        if hi is None:
            return f"[{self._number(lo)}, ...)"
        if self._singletons and hi == lo + 1 and lo < 2:
            return f"[{lo}]"
        return f"[{self._number(lo)}, {self._number(hi)})"


def bucket_bounds(spec: MapSpec) -> Callable[[int], tuple[int | None, int | None]]:
    """A hist or lhist map's bucket index -> its range (lo, hi), hi exclusive, None at an open end:
    the buckets as printed, for other readers of the counts (pybpf.runtime.metrics)."""
    return _bucket_layout(spec).bounds


def _bucket_layout(spec: MapSpec) -> _BucketLayout:
    if spec.kind is MapKind.HIST:
        return _HIST_LAYOUT
    return _lhist_layout(spec.lhist)


def _hist_bounds(index: int) -> tuple[int | None, int | None]:
    # 0: negative values, 1: zero, 2: one, i >= 3: [2^(i-2), 2^(i-1)).
    if index == 0:
        return None, 0
    if index < 3:
        return index - 1, index
    return 1 << (index - 2), 1 << (index - 1)


def _power_of_two_label(value: int) -> str:
    if value == 0:
        return "0"
    power = value.bit_length() - 1
    # bpftrace 0.17 stops at T (2^50 prints as 1024T); current bpftrace goes on to P and E.
    return f"{1 << (power % 10)}{_SUFFIXES[power // 10]}"


_HIST_LAYOUT = _BucketLayout(_hist_bounds, _power_of_two_label, singletons=True)


def _lhist_layout(params: LhistParams) -> _BucketLayout:
    last = params.buckets + 1

    def bounds(index: int) -> tuple[int | None, int | None]:
        if index == 0:
            return None, params.min
        if index == last:
            return params.max, None
        return params.min + (index - 1) * params.step, params.min + index * params.step

    return _BucketLayout(bounds, _lhist_number(params.step), singletons=False)


def _lhist_number(step: int) -> Callable[[int], str]:
    # Bounds print with a K or M suffix only when the step is a multiple of 1024, as in current
    # bpftrace; 0.17 abbreviated any multiple of 1024, so lhist(x, 1000, 1100, 8) showed [1K, 1032).
    if step % 1024:
        return str

    def number(value: int) -> str:
        if value and value % (1 << 20) == 0:
            return f"{value >> 20}M"
        if value and value % 1024 == 0:
            return f"{value >> 10}K"
        return str(value)
    return number
