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

This module writes the stream, the map names and the keys; the map's kind (pybpf.mapkinds) renders
its values (a hist's bucket lines, a stats line) and says how entries sort. Keyed maps print sorted
by value, ascending (hist maps by their total count, avg and stats maps by their average, maps of
strings and tuples by key), ties by key; integer key parts compare as unsigned 64-bit, as bpftrace
compares the raw key bytes.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import itemgetter
from collections.abc import Iterable

TYPE_CHECKING = False       # typing costs ~2 ms at every start
if TYPE_CHECKING:
    from typing import TextIO

from pybpf import types as T
from pybpf.mapkinds import kind_for
from pybpf.mapkinds.base import Entries, MapKind
from pybpf.program import HelperErrorSite, MapSpec
from pybpf.runtime import helper_errors, symbols
from pybpf.runtime.values import Pointer, Record, Struct, text_of

_UNSIGNED = (1 << 64) - 1

# bpftrace's JSON escaping: the two JSON metacharacters, \n \r \t by name, other control bytes as \u00XX.
_EXACT_IN_DOUBLE = 1 << 53
# errorf()/warnf()'s text: "FILE:LINE:COL-END: ERROR: message" (pybpf.builtins.output).
_LOCATED = r"(?s)(.*):(\d+):(\d+)-\d+: (?:ERROR|WARNING): (.*)"    # compiled by re at first use
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
_JSON_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                      ord("\t"): "\\t"})
# A byte of a kernel string that is not UTF-8 (a lone surrogate from decode_string) as the text
# `\xNN`: JSON holds only Unicode text, and this keeps the byte's value visible.
_JSON_ESCAPES.update({0xDC00 + byte: f"\\\\x{byte:02x}" for byte in range(0x80, 0x100)})


class Output:
    """What a running program prints, as the pybpf command prints it, to `stream`: the Session
    calls one method per event (printf(text), value(v), map(spec, entries), maps_at_exit(...),
    lost(n), ...). make_output() gives the text, json or folded one; Program.run(output=...)
    takes it."""

    EXIT_SEPARATOR = ""     # printed before the maps at exit

    def __init__(self, stream: TextIO, *, quiet: bool = False, flush_each: bool = True,
                 warnings: bool = True):
        self.stream = stream
        self.quiet = quiet              # -q: no "Attaching N probes..." (nor its JSON record)
        self.flush_each = flush_each    # -B full: False, the stream's buffer decides
        self.warnings = warnings        # --no-warnings: False, warnf() records left out

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

    def cat(self, text: str) -> None:
        """cat(FILE): the file's text."""
        raise NotImplementedError

    def map(self, spec: MapSpec, entries: Entries) -> None:
        raise NotImplementedError

    def lost(self, events: int) -> None:
        raise NotImplementedError

    def helper_error(self, site: HelperErrorSite, retcode: int, warn) -> None:
        """A helper call failed where bpftrace warns: in text, a warning through warn()."""
        warn(helper_errors.warning_text(site, retcode))

    def located(self, record: str, text: str, write) -> None:
        """errorf()/warnf() (`record` "errorf" or "warnf"): `text`, which starts with the call's
        place (`stdin:1:9-62: ERROR: `); in text, written by write() (stderr)."""
        write(text)


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

    def cat(self, text: str) -> None:
        self._emit(text)

    def lost(self, events: int) -> None:
        self._emit(f"Lost {events} events\n")

    def map(self, spec: MapSpec, entries: Entries) -> None:
        # Every map ends in a newline of its own (an empty map prints just that), then its kind's
        # trailer (a blank line after avg/stats maps); a hist value is its bucket lines.
        name, kind = spec.name, kind_for(spec.kind)
        out = []
        ordered = _sorted_entries(spec, entries)
        plain_values = kind.plain_type(spec)
        if plain_values and _int_keys(spec) == 1:
            # The common @[pid] = count(): str() of both ints, nothing else per line.
            out.extend([f"{name}[{key}]: {value}\n" for (key,), value in ordered])
        elif plain_values and not _has_tuple(spec.key):
            out.extend([f"{name}[{', '.join(map(str, key))}]: {value}\n" if key else f"{name}: {value}\n"
                        for key, value in ordered])
        else:
            render = kind.text_value(spec, text_of)
            separator = kind.text_separator
            out.extend(f"{name}{_text_key(key)}{separator}{render(value)}\n" for key, value in ordered)
        out.append(("" if entries else "\n") + kind.text_trailer)
        self._emit("".join(out))


class FoldedOutput(TextOutput):
    """Text output, but maps keyed by stacks print folded, one line per key as flamegraph.pl and
    speedscope read: `a;b;c N`, outermost first. The key's other parts (comm, pid, ...) come
    first, then its user stacks, then its kernel stacks (the order a call descends)."""

    def map(self, spec: MapSpec, entries: Entries) -> None:
        if spec.kind not in (MapKind.COUNT, MapKind.SUM) or \
                not any(isinstance(t, T.StackType) for t in spec.key):
            super().map(spec, entries)       # only what adds up (counts, sums) folds
            return
        # stacks that differ only in offsets or ids fold into one line, their values summed
        folded: dict[str, int] = {}
        for key, value in entries:
            line = ";".join(_folded_frames(key)) or "[empty]"
            folded[line] = folded.get(line, 0) + value
        self._emit("".join(f"{line} {n}\n" for line, n in sorted(folded.items(), key=lambda item: item[1])))


def _folded_frames(key: tuple) -> list[str]:
    others = [text_of(part) for part in key if not isinstance(part, symbols.Stack)]
    stacks = sorted((part for part in key if isinstance(part, symbols.Stack)),
                    key=lambda stack: not stack.user)          # user stacks above kernel ones
    return others + [f for stack in stacks for f in reversed(stack.functions)]


class JsonOutput(Output):
    """bpftrace 0.26's records. attached_probes and lost_events carry both its `count` and the
    `data` object earlier versions (0.17 here) had, as 0.26 writes them."""

    def _attached_text(self, probes: int) -> str:
        return f'{{"type": "attached_probes", "count": {probes}, "data": {{"probes": {probes}}}}}\n'

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

    def cat(self, text: str) -> None:
        self._emit(f'{{"type": "cat", "data": {_json_str(text)}}}\n')

    def lost(self, events: int) -> None:
        self._emit(f'{{"type": "lost_events", "count": {events}, "data": {{"events": {events}}}}}\n')

    def located(self, record: str, text: str, write) -> None:
        """bpftrace 0.26's errorf/warnf record, on stdout with the others: the message and the
        call's place (its first line and column), parsed back from the located text. With
        --no-warnings bpftrace drops a warnf() whole, its record too."""
        if record == "warnf" and not self.warnings:
            return
        import re       # here: only -f json's errorf/warnf need it, and a cache hit imports no re

        place = re.match(_LOCATED, text)
        if place is None:
            write(text)
            return
        filename, line, column, message = place.groups()
        self._emit(f'{{"type": "{record}", "msg": {_json_str(message)}, "filename": '
                   f'{_json_str(filename)}, "line": {line}, "col": {column}}}\n')

    def helper_error(self, site: HelperErrorSite, retcode: int, warn) -> None:
        """bpftrace writes its helper_error records with the others, on stdout."""
        self._emit(helper_errors.json_record(site, retcode) + "\n")

    def map(self, spec: MapSpec, entries: Entries) -> None:
        if not entries:
            return      # bpftrace prints nothing at all for an empty map in JSON
        kind = kind_for(spec.kind)
        render = kind.json_value(spec, _json_value)
        ordered = _sorted_entries(spec, entries)
        if spec.key and _int_keys(spec) and kind.plain_type(spec) is int:
            # Integer keys and values need no escaping: str() of each, as text_of would give.
            if len(spec.key) == 1:
                body = "{" + ", ".join([f'"{key}": {_json_int(value)}' for (key,), value in ordered]) + "}"
            else:
                body = "{" + ", ".join([f'"{",".join(map(str, key))}": {_json_int(value)}'
                                        for key, value in ordered]) + "}"
        elif spec.key:
            body = "{" + ", ".join(f"{_json_key(key)}: {render(value)}" for key, value in ordered) + "}"
        else:
            body = render(ordered[0][1])
        self._emit(f'{{"type": "{kind.json_type}", "data": {{{_json_str(spec.name)}: {body}}}}}\n')


def top_entries(spec: MapSpec, entries: Entries, top: int, div: int) -> Entries:
    """print(@m, top, div): integer values divided by div, rounded half away from zero (bpftrace
    0.26's example prints 5, 6, 7 divided by 2 as 3, 3, 4), then the `top` entries that print last
    (the greatest); top <= 0 keeps all, div <= 1 divides nothing."""
    if div > 1 and kind_for(spec.kind).plain_type(spec) is int:
        def scaled(value: int) -> int:
            magnitude = (abs(value) * 2 + div) // (2 * div)
            return magnitude if value >= 0 else -magnitude
        entries = [(key, scaled(value)) for key, value in entries]
    return _sorted_entries(spec, entries)[-top:] if top > 0 else entries


def make_output(fmt: str, stream: TextIO, *, quiet: bool = False, flush_each: bool = True,
                warnings: bool = True) -> Output:
    """The Output that writes `fmt` ('text': bpftrace's text, 'json': one JSON object per line,
    'folded': text with stack-keyed maps folded for flame graphs) to `stream`; quiet leaves out
    the attached line, flush_each=False leaves the flushing to the stream's buffer (-B full),
    warnings=False leaves out warnf()'s JSON records (--no-warnings; its text goes to the
    Trace's on_warning)."""
    kinds = {"text": TextOutput, "json": JsonOutput, "folded": FoldedOutput}
    if fmt in kinds:
        return kinds[fmt](stream, quiet=quiet, flush_each=flush_each, warnings=warnings)
    raise ValueError(f"unknown output format {fmt!r}: expected 'text', 'json' or 'folded'")


# --- ordering ----------------------------------------------------------------------------------------

def _sorted_entries(spec: MapSpec, entries: Entries) -> Entries:
    """By key, then stably by the kind's sort key (by value, total count, average; none: by key)."""
    by_key = _sorted_by_key(spec, entries)
    sort_key = kind_for(spec.kind).entry_sort_key(spec)
    return by_key if sort_key is None else sorted(by_key, key=sort_key)


_KEY = itemgetter(0)


def _sorted_by_key(spec: MapSpec, entries: Entries) -> Entries:
    """Entries by key, integer parts compared as unsigned 64-bit."""
    parts = _int_keys(spec)
    if not parts or not entries:
        return sorted(entries, key=lambda e: key_order(e[0]))
    # Keys of integers only: the key tuples compare as they are (in C) unless a part is negative.
    by_key = sorted(entries, key=_KEY)
    if by_key[0][0][0] >= 0 and (parts == 1 or min(map(min, map(_KEY, entries))) >= 0):
        return by_key
    if parts == 1:
        # As unsigned, the negative keys come after every other, in the same order among themselves.
        split = bisect_left(by_key, 0, key=lambda e: e[0][0])
        return by_key[split:] + by_key[:split]
    return sorted(entries, key=lambda e: key_order(e[0]))


def _int_keys(spec: MapSpec) -> int:
    """The number of key parts when every one is an integer, else 0."""
    return len(spec.key) if spec.key and all(type(t) is T.IntType and not t.boolean for t in spec.key) else 0


def _has_tuple(types) -> bool:
    """Whether a key part is not printed by str(): tuples, arrays, structs, bools (true, false)."""
    return any(isinstance(t, (T.TupleType, T.ArrayType, T.StructType)) or
               (isinstance(t, T.IntType) and t.boolean) for t in types)


def key_order(key: tuple) -> tuple:
    return tuple(_part_order(part) for part in key)


def _part_order(part):
    if isinstance(part, int):
        return part & _UNSIGNED
    if isinstance(part, tuple):
        return key_order(part)
    return part


# --- text --------------------------------------------------------------------------------------------

def _text_key(key: tuple) -> str:
    return "[" + ", ".join(map(text_of, key)) + "]" if key else ""


# --- JSON --------------------------------------------------------------------------------------------

def _json_str(text: str) -> str:
    # bpftrace 0.17 also escapes every byte of a UTF-8 sequence as \uffffffXX (a sign-extension bug);
    # pybpf writes the characters as they are, as JSON allows.
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def _json_key(key: tuple) -> str:
    return _json_str(",".join(map(text_of, key)))


def _json_int(value: int) -> str:
    """As bpftrace 0.26: an integer a JSON reader's double cannot hold exactly is a string."""
    return str(value) if -_EXACT_IN_DOUBLE <= value <= _EXACT_IN_DOUBLE or float(value) == value \
        else f'"{value}"'


def _json_value(value) -> str:
    if isinstance(value, str):
        return _json_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Pointer):
        return _json_str(str(value))
    if isinstance(value, Struct):
        return "{" + ", ".join(f"{_json_str(name)}: {_json_value(v)}" for name, v in value) + "}"
    if isinstance(value, Record):
        return "{" + ", ".join(f"{_json_str(name)}: {_json_value(v)}" for name, v in zip(value._names, value)) + "}"
    if isinstance(value, tuple):
        return "[" + ",".join(map(_json_value, value)) + "]"
    if isinstance(value, int):
        return _json_int(value)
    return str(value)
