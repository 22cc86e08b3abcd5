"""The library: compile a program, run it, and read its events and maps as Python values.

    import pybpf

    prog = pybpf.compile('tracepoint:raw_syscalls:sys_enter { @calls[comm] = count(); }')
    with prog.run(on_printf=print) as trace:     # loads, attaches, runs BEGIN
        trace.wait(1.0)                            # serve events for a second (or until exit())
        calls = trace.maps["@calls"]               # a live, read-only Mapping: {"bash": 12, ...}
        print(calls.get("bash", 0))
    trace.print_maps()                             # after the block: the final values, as bpftrace

A `Trace` is started by `with` (or `start()`) and stopped when the block ends: END runs, the last
events are delivered, the maps' final values stay readable. Ctrl-C (KeyboardInterrupt) in the block
stops the trace the same way, then goes on up to the caller; any other exception only releases
everything. Every error pybpf raises is a `pybpf.Error` (pybpf.errors.PybpfError).
"""

from __future__ import annotations

import io
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from pybpf.compiler import CompileOptions, StageTimes, compile_to_ir
from pybpf.mapkinds import MapKind, kind_for
from pybpf.program import CompiledProgram, HelperErrorCount, HelperErrorSite, MapSpec
from pybpf.records import record, replace

TYPE_CHECKING = False       # typing's own would import typing, ~2 ms at every start of the command
if TYPE_CHECKING:
    from typing import Any, TextIO

    from pybpf.runtime.errors import VerifierError
    from pybpf.runtime.output import Output

Key = int | str | tuple[object, ...]
"""A map key: an int or a str for a one-part key, a tuple for several parts, () for a map without
a key (`@total = count()`). A record part, `@m[(comm=comm, pid=pid)]`, is a named tuple
(pybpf.Record): `key.comm`; it equals the plain tuple of its values, `("bash", 12)`."""
PrintfCallback = Callable[[str], None]
EventCallback = Callable[[object], None]
LostCallback = Callable[[int], None]
WarningCallback = Callable[[str], None]


def compile(source: str, *, params: Sequence[str | int] = (), options: CompileOptions | None = None,
            filename: str = "stdin", cache: bool = True) -> Program:
    """Compile `source` (bpftrace's language) into a Program, ready to run.

    `params` are the positional parameters $1, $2...; `options` the other compile settings
    (pybpf.CompileOptions: map entries, ring buffer size...); `filename` names the source in
    errors. With `cache`, a program compiled before is read from pybpf's cache (~/.cache/pybpf).
    Raises pybpf.CompileError (a pybpf.Error) with the diagnostics rendered as pybpf prints them."""
    from pybpf.cache import compile_cached
    from pybpf.compiler import compile_source
    from pybpf.deepstack import on_deep_stack

    options = replace(options or CompileOptions(),
                      params=tuple(str(p) for p in params) if params else
                      (options.params if options else ()))
    times = StageTimes()
    compiled = compile_cached(source, filename, options, times) if cache else \
        on_deep_stack(compile_source, source, filename, options, times)
    return Program(compiled, source, filename, options, times.seconds)


@record(frozen=True)
class MapInfo:
    """What the compiler knows of a map: `kind` is 'value', 'count', 'sum', 'min', 'max', 'avg',
    'stats', 'hist' or 'lhist'; `key_types` and `value_type` are pybpf's type names ('uint64',
    'string[16]', ...; no key types for a map without a key)."""
    name: str
    kind: str
    key_types: tuple[str, ...]
    value_type: str


class Program:
    """A compiled program: its probes, its maps and their types, its LLVM IR and BPF ELF object.
    `run()` makes a Trace of it; a Program can be run any number of times."""

    def __init__(self, compiled: CompiledProgram, source: str, filename: str,
                 options: CompileOptions, stage_seconds: Mapping[str, float] | None = None):
        self.compiled = compiled
        """The compiler's hand-off to the run side (pybpf.CompiledProgram)."""
        self.source = source
        self.filename = filename
        self.options = options
        self.stage_seconds = dict(stage_seconds or {})
        """The seconds each compile stage took, by stage ('parse': 0.012, ...); empty when the
        program came from the cache."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """The compiler's warnings, each rendered as a diagnostic (`stdin:1:5-9: WARNING: ...`, the
        line, the `~` marks); kept with a cached program, so each run can show them."""
        return self.compiled.warnings

    @property
    def probes(self) -> tuple[str, ...]:
        """Every attach point, by full name ('tracepoint:syscalls:sys_enter_openat', 'BEGIN')."""
        return tuple(point.name for p in self.compiled.programs for point in p.attach_points)

    @property
    def maps(self) -> Mapping[str, MapInfo]:
        """The program's maps by name ('@calls'), in name order."""
        return {spec.name: MapInfo(spec.name, spec.kind.value, tuple(map(str, spec.key)),
                                   str(spec.value))
                for spec in sorted(self.compiled.maps, key=lambda s: s.name)}

    @property
    def elf(self) -> bytes:
        """The BPF ELF object, as LLVM wrote it."""
        return self.compiled.elf

    @property
    def ir(self) -> str:
        """The program's LLVM IR (compiled again up to IR: the cache keeps only the object)."""
        from pybpf.deepstack import on_deep_stack
        ir_text: str = on_deep_stack(compile_to_ir, self.source, self.filename, self.options)[0]
        return ir_text

    def run(self, on_printf: PrintfCallback | None = None, on_event: EventCallback | None = None,
            on_lost: LostCallback | None = None, *, output: Output | None = None,
            on_warning: WarningCallback | None = None, pid: int = 0, cpid: int = 0) -> Trace:
        """A Trace of this program, not started yet (`with` starts it, or `start()`).

        on_printf(text): the text of printf(), time(), join(), system(), cat() and print(@map);
        default: written to stdout.
        on_event(value): the value of each print(value) (an int, str, tuple, or a record as a
        named tuple: print((pid=pid, comm=comm)) gives `event.pid`, `event.comm`); default: printed.
        on_lost(n): n more events were lost (the ring buffer was full); default: a line on stderr.
        output: in place of the three callbacks, print everything as the pybpf command does, in
        its text, json or folded format (pybpf.make_output): the `Attaching N probes...` line, the
        events, the maps at exit, the lost events; a ValueError with any of the callbacks.
        on_warning(text): the WARNING lines (warnf(), failed helper calls); default: stderr.
        pid: the process a program compiled with CompileOptions(filter_pid=True) runs in (the
        command's -p PID). cpid: the value of the program's `cpid` (the command's -c process).
        """
        return Trace(self, on_printf, on_event, on_lost, output=output, on_warning=on_warning,
                     pid=pid, cpid=cpid)

    def verify(self, on_verifier_log: Callable[[str, str], None] | None = None) -> None:
        """Load every BPF program of this one through the kernel's verifier, then release them;
        nothing is attached (the command's --dry-run). Raises pybpf.VerifierError when the kernel
        refuses one (describe_rejection() shows where), pybpf.NotSupportedError when this kernel
        cannot load a kind of program at all (fentry under lockdown). on_verifier_log(probe,
        log), when given, takes each program's verifier log (the command's -d verifier)."""
        from pybpf.runtime.loader import load

        load(self.compiled.object, self.compiled, on_verifier_log).close()

    def describe_rejection(self, error: VerifierError) -> str:
        """The verifier's rejection shown on the statement whose code it refused (found from the
        object's line info), as the pybpf command prints it: the diagnostic (`stdin:1:30-45:
        ERROR: the kernel's verifier rejected the program for ...`, the line, the `~` marks), then
        the verifier's last lines. Where no statement is known, `ERROR: ` and the error's text.
        The whole verifier log is `error.log`."""
        from pybpf.diagnostics import LINE_INFO_MAX_COLUMN, Diagnostics, Span

        if error.source is None:
            return f"ERROR: {error}"
        text = str(error)
        details = text.split("\n", 1)[1] if "\n" in text else ""
        line, column = error.source
        span = next((Span(*s) for s in self.compiled.statement_spans
                     if (s[0], min(s[1], LINE_INFO_MAX_COLUMN)) == (line, column)),
                    Span(line, column, line, column + 1))
        diags = Diagnostics(self.source, self.filename)
        diags.error(f"the kernel's verifier rejected the program for {error.program}", span)
        rendered: str = diags.render()
        return f"{rendered}\n{details}"


@record(frozen=True)
class Bucket:
    """One histogram bucket: values in [lo, hi) (hi exclusive); None for an open end."""
    lo: int | None
    hi: int | None
    count: int


class Histogram:
    """The value of one key of a hist or lhist map. `buckets` lists, as bpftrace prints them, the
    buckets from the lowest to the highest non-empty one; `str()` is the bpftrace text."""

    def __init__(self, spec: MapSpec, key: tuple[object, ...], counts: Mapping[int, int]):
        self._spec, self._key, self.counts = spec, key, dict(counts)

    @property
    def buckets(self) -> list[Bucket]:
        """The buckets from the lowest to the highest non-empty one, empty ones between included."""
        shown = [i for i, n in self.counts.items() if n]
        if not shown:
            return []
        bounds = _bucket_bounds(self._spec)
        return [Bucket(*bounds(i), self.counts.get(i, 0)) for i in range(min(shown), max(shown) + 1)]

    @property
    def total(self) -> int:
        """The number of values counted."""
        return sum(self.counts.values())

    def render(self) -> str:
        """The text bpftrace prints for this key: its header line, the bucket lines, a blank line."""
        return _render_text(self._spec, [(self._key, self.counts)])

    def __str__(self) -> str:
        return self.render()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self.buckets == other.buckets

    def __repr__(self) -> str:
        return f"Histogram({self.buckets!r})"


@record(frozen=True)
class Stats:
    """The value of one key of an avg or stats map: the count and total of the values, and their
    integer average (truncated toward zero, as bpftrace prints it); `kind` is 'avg' or 'stats'."""
    count: int
    total: int
    kind: str = "stats"

    @property
    def average(self) -> int:
        """total / count, truncated toward zero; 0 when nothing was counted."""
        if not self.count:
            return 0
        quotient = abs(self.total) // self.count
        return quotient if self.total >= 0 else -quotient

    def render(self) -> str:
        """As bpftrace prints the value: 'count 3, average 21, total 63' (stats), '21' (avg)."""
        if self.kind == "avg":
            return str(self.average)
        return f"count {self.count}, average {self.average}, total {self.total}"

    def __str__(self) -> str:
        return self.render()


Value = int | str | tuple[object, ...] | Histogram | Stats
"""A map value: int (count, sum, min, max, integer values), str, tuple or record (a named tuple,
pybpf.Record), Histogram (hist, lhist) or Stats (avg, stats)."""


class MapView(Mapping[Key, Value]):
    """One map of a running trace, as a read-only Mapping: every read asks the kernel afresh (one
    batch of syscalls for the whole map); after the trace stopped, its final values. Keys and values
    are Python values (see Key and Value); `snapshot()` reads once for several lookups."""

    def __init__(self, trace: Trace, spec: MapSpec):
        self._trace, self.spec = trace, spec

    @property
    def name(self) -> str:
        """'@calls'."""
        return self.spec.name

    def snapshot(self) -> dict[Key, Value]:
        """Every entry now, as a dict."""
        return {_user_key(key): _user_value(self.spec, key, value)
                for key, value in self._trace._entries(self.spec)}

    @property
    def value(self) -> Value | None:
        """The value of a map without a key (`@total = count()`), None while it has none."""
        return self.snapshot().get(())

    def render(self) -> str:
        """The map as bpftrace prints it (print(@m), or at exit)."""
        return _render_text(self.spec, self._trace._entries(self.spec))

    def __getitem__(self, key: Key) -> Value:
        return self.snapshot()[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def __repr__(self) -> str:
        return f"MapView({self.name!r}, {self.snapshot()!r})"


class MapsView(Mapping[str, MapView]):
    """The maps of a trace by name ('@calls', '@' for the anonymous map)."""

    def __init__(self, trace: Trace):
        self._views = {spec.name: MapView(trace, spec) for spec in trace.program.compiled.maps}

    def __getitem__(self, name: str) -> MapView:
        try:
            return self._views[name]
        except KeyError:
            raise KeyError(f"no map {name!r}: the program's maps are "
                           f"{', '.join(sorted(self._views)) or 'none'}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._views))

    def __len__(self) -> int:
        return len(self._views)


class Trace:
    """A program running in the kernel. The host drives it: `poll()` (or `wait()`) delivers the
    waiting events to the callbacks; `fileno()` is readable when there are some, for the host's own
    event loop (it is valid before `start()`). `stop()` detaches, runs END, delivers the last events
    and keeps the maps' final values; `close()` releases everything without END."""

    def __init__(self, program: Program, on_printf: PrintfCallback | None = None,
                 on_event: EventCallback | None = None, on_lost: LostCallback | None = None, *,
                 output: Output | None = None, on_warning: WarningCallback | None = None,
                 pid: int = 0, cpid: int = 0):
        from pybpf.runtime.session import Session

        if output is not None and (on_printf or on_event or on_lost):
            raise ValueError("give a Trace either an output or the on_printf, on_event and "
                             "on_lost callbacks, not both")
        self.program = program
        self.lost = 0
        """Events lost so far (the ring buffer was full when the kernel wrote them); with an
        output, counted at stop(), when the output prints them."""
        self._on_printf = on_printf or _write_stdout
        self._on_event = on_event or _print_value
        self._on_lost = on_lost or _report_lost
        # An output prints the lost events itself, once, at stop() (as the pybpf command does):
        # poll() then reads no lost counter.
        self._polls_lost = output is None
        self._final: dict[str, list[tuple[tuple[object, ...], object]]] | None = None
        sink = _Sink(self) if output is None else _Forward(self, output)
        self._session = Session(program.compiled, sink, on_warning, cpid, pid)
        # One fd for the host from the start: the ring buffer's joins it once it exists.
        self._epoll = select.epoll()
        self._started = False
        self.maps = MapsView(self)
        """The maps by name, live while running, their final values after stop()."""

    def start(self, run_begin: bool = True) -> Trace:
        """Load, attach every probe and run BEGIN (not with run_begin=False: bpftrace's
        --dry-run, which then close()s). On failure nothing stays attached; raises a pybpf.Error
        (pybpf.ProbeUnavailableError when the kernel cannot run a kind of probe)."""
        if not self._started:
            self._started = True
            try:
                self._session.start(run_begin)
                self._epoll.register(self._session.fileno(), select.EPOLLIN)
            except BaseException:
                self.close()
                raise
        return self

    def fileno(self) -> int:
        """An fd that is readable when events wait: then call poll(0). Valid before start()."""
        return self._epoll.fileno()

    @property
    def running(self) -> bool:
        """Started, and neither stopped nor ended by the program's exit()."""
        return self._started and self._final is None and not self._session.exited \
            and self._session.loaded is not None

    def poll(self, timeout: float = 0.0) -> bool:
        """Wait up to `timeout` seconds for events and deliver every waiting one. False once the
        program called exit() or the trace stopped (then stop() it, if not yet done)."""
        alive: bool = self._session.poll(timeout) if self.running else False
        if self._polls_lost and self._session.loaded is not None:
            self._count_lost()
        return alive

    def wait(self, timeout: float | None = None) -> bool:
        """poll() until the program calls exit() (-> True) or `timeout` seconds pass (-> False;
        None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            self.poll(left)
        exited: bool = self._session.exited
        return exited

    def stop(self) -> None:
        """Detach every probe, run END, deliver the last events, keep the maps' final values and
        release the kernel objects. Idempotent."""
        if self._final is None and self._started:
            self._final = {}
            self._session.stop()         # its maps_at_exit fills _final
        self.close()

    def close(self) -> None:
        """Release everything (nothing runs END). Idempotent."""
        self._session.close()
        self._epoll.close()

    @property
    def exit_code(self) -> int:
        """The code the program gave exit() (`exit(3)`: 3), else 0: what the pybpf command exits
        with."""
        code: int = self._session.exit_code
        return code

    def helper_errors(self) -> list[HelperErrorCount]:
        """How often each checked helper call failed so far (a full map's refused inserts among
        them), one HelperErrorCount per call site: e.g. [HelperErrorCount(helper='map_update_elem',
        map='@m', location='stdin:1:40-50', map_full=True, count=6), ...]. Read from per-CPU
        counters the program keeps, whatever the warnings; after stop(), the final counts.
        `pybpf.runtime.helper_errors.by_helper()` and `map_full()` sum them by helper and by map."""
        counts: list[HelperErrorCount] = self._session.helper_errors()
        return counts

    def print_maps(self, file: TextIO | None = None) -> None:
        """Print every map as bpftrace prints them at exit, in name order."""
        stream = file or sys.stdout
        for name in self.maps:
            stream.write(self.maps[name].render())
        stream.flush()

    def __enter__(self) -> Trace:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.stop()
        else:
            self.close()

    def _entries(self, spec: MapSpec) -> list[tuple[tuple[object, ...], object]]:
        if self._final is not None:
            return self._final.get(spec.name, [])
        if self._session.loaded is None:
            return []            # not started: nothing counted yet
        entries: list[tuple[tuple[object, ...], object]] = self._session.read_map(spec)
        return entries

    def _count_lost(self) -> None:
        if self._session.loaded is not None:
            self._lost_total(self._session.lost_events())

    def _lost_total(self, total: int) -> None:
        if total > self.lost:
            new, self.lost = total - self.lost, total
            self._on_lost(new)


class _Sink:
    """The Session's output, turned into the Trace's callbacks (pybpf.runtime.output.Output's
    methods)."""

    def __init__(self, trace: Trace):
        self._trace = trace

    def attached(self, probes: int) -> None:
        pass            # a library prints nothing of its own

    def printf(self, text: str) -> None:
        self._trace._on_printf(text)

    def time(self, text: str) -> None:
        self._trace._on_printf(text)

    def syscall(self, text: str) -> None:
        self._trace._on_printf(text)

    def join(self, text: str) -> None:
        self._trace._on_printf(text + "\n")

    def cat(self, text: str) -> None:
        self._trace._on_printf(text)

    def value(self, value: object) -> None:
        self._trace._on_event(value)

    def map(self, spec: MapSpec, entries: list[tuple[tuple[object, ...], object]]) -> None:
        self._trace._on_printf(_render_text(spec, entries))

    def maps_at_exit(self, maps: list[tuple[MapSpec, list[tuple[tuple[object, ...], object]]]]) \
            -> None:
        self._trace._final = {spec.name: entries for spec, entries in maps}

    def lost(self, events: int) -> None:
        self._trace._lost_total(events)

    def helper_error(self, site: HelperErrorSite, retcode: int, warn: Callable[[str], None]) -> None:
        from pybpf.runtime.helper_errors import warning_text

        warn(warning_text(site, retcode))

    def located(self, record: str, text: str, write: Callable[[str], None]) -> None:
        write(text)     # errorf() to stderr, warnf() to on_warning, as the Session chose


class _Forward:
    """The Session's output when the host gave one (Program.run(output=...)): everything goes to
    it, and the Trace keeps the maps' final values and the lost count as with callbacks."""

    def __init__(self, trace: Trace, output: Output):
        self._trace, self._output = trace, output

    def __getattr__(self, name: str) -> Any:
        return getattr(self._output, name)

    def maps_at_exit(self, maps: list[tuple[MapSpec, list[tuple[tuple[object, ...], object]]]]) \
            -> None:
        self._trace._final = {spec.name: entries for spec, entries in maps}
        self._output.maps_at_exit(maps)

    def lost(self, events: int) -> None:
        self._trace.lost = events
        self._output.lost(events)


def _render_text(spec: MapSpec, entries: list[tuple[tuple[object, ...], object]]) -> str:
    from pybpf.runtime.output import make_output

    buffer = io.StringIO()
    make_output("text", buffer).map(spec, entries)
    return buffer.getvalue()


def _bucket_bounds(spec: MapSpec) -> Callable[[int], tuple[int | None, int | None]]:
    from pybpf.mapkinds.hist import Hist    # here: a map kind's module is imported when a map has it

    kind = kind_for(spec.kind)
    assert isinstance(kind, Hist)          # hist and lhist: the kinds with buckets
    bounds: Callable[[int], tuple[int | None, int | None]] = kind.layout(spec).bounds
    return bounds


def _user_key(key: tuple[object, ...]) -> Key:
    if len(key) == 1:            # @m[k]: k itself (@m[(a, b)] and @m[a, b] alike give (a, b))
        part = key[0]
        assert isinstance(part, (int, str, tuple))
        return part
    return key


def _user_value(spec: MapSpec, key: tuple[object, ...], value: object) -> Value:
    if kind_for(spec.kind).has_buckets:
        assert isinstance(value, dict)
        return Histogram(spec, key, value)
    if spec.kind in (MapKind.AVG, MapKind.STATS):
        assert isinstance(value, tuple)        # the runtime's (count, total)
        count, total = value
        assert isinstance(count, int) and isinstance(total, int)
        return Stats(count, total, spec.kind.value)
    assert isinstance(value, (int, str, tuple))
    return value


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _print_value(value: object) -> None:
    from pybpf.runtime.values import text_of

    _write_stdout(text_of(value) + "\n")


def _report_lost(events: int) -> None:
    print(f"Lost {events} events", file=sys.stderr, flush=True)
