"""The run-time lifecycle of a compiled program: load, attach, serve events, stop, print, unload.

    with Session(compiled, output) as session:
        session.start()                     # load, attach, run BEGIN
        while session.poll(0.2):            # False once exit() ran; the host owns the loop (fileno())
            pass
        session.stop()                      # detach, run END, drain, print maps and lost events

`output` receives text and values, never bytes: attached(n), printf(text), map(spec, entries),
maps_at_exit([(spec, entries), ...]), lost(n), helper_error(site, retcode, warn) (pybpf.runtime.output).
`warn(text)` gets warnings (default: a line on stderr): the failed helper calls bpftrace warns
about, and at stop() one line if any checked helper failed (a full map among them);
helper_errors() counts them. close() (and leaving the with block) releases every fd even after an
error, without printing anything.
"""

from __future__ import annotations

import struct
import sys
import threading
import time

from pybpf.program import (EVENT_HEADER_SIZE, EVENTS_MAP, EXIT_MAP, HELPER_ERRORS_MAP, LOST_MAP, SITE_BITS,
                           SKB_OUTPUT_MAP, START_CPID, START_MAP, START_NSECS, START_TRACED, STACKS_MAP, AttachPoint,
                           CompiledProgram, EventKind, HelperErrorCount, MapSpec)
from pybpf import types as T
from pybpf.runtime import helper_errors, maps, symbols
from pybpf.runtime.attach import (RUN_AT_START, RUN_AT_STOP, RUN_ONCE, attach, attach_together,
                                  attaches_together)
from pybpf.runtime.command import read_file, run_command
from pybpf.runtime.errors import NotSupportedError, ProbeAttachError
from pybpf.runtime.loader import LoadedObject, ProbeUnavailableError, load
from pybpf.runtime.output import top_entries
from pybpf.runtime.printf import format_printf
from pybpf.runtime.ringbuf import DrainingReader, RingBufferReader
from pybpf.runtime.values import slot_decoder
from pybpf.uapi.perf_event import PerfType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.runtime.attach import Attachment
    from pybpf.runtime.pcap import PcapFiles
    from pybpf.runtime.perfbuf import PerfBuffers

_HEADER = struct.Struct("<II")       # EventKind, index
_PRINT_LIMITS = struct.Struct("<qq")  # print(@m, top, div)
_ADDRESS = struct.Struct("<Q")        # unwatch(addr)
# Attaching thousands of points takes seconds (a perf event each): past this, a progress line on
# stderr each time this much more has passed.
PROGRESS_EVERY_S = 1.0
DETACH_THREADS = 32          # closing attachments at once (with this thread)


# How often the keys of user-stack maps are read for new processes: one that runs for less than
# this between its first sample and its exit can print [unknown] frames.
STACK_SCAN_INTERVAL_S = 0.25


class Session:
    """The run side of one compiled program: start() loads and attaches it, poll() serves its
    events to `output`, stop() runs END and prints the maps (see the module's docstring). The
    library's Trace (pybpf.api) is built on it."""

    def __init__(self, compiled: CompiledProgram, output, warn=None, child_pid: int = 0,
                 traced_pid: int = 0):
        self.compiled = compiled
        self.child_pid = child_pid      # -c CMD's process, `cpid`
        self.traced_pid = traced_pid    # -p/-c: the process a program compiled with filter_pid runs in
        self.output = output
        self.warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self._final_helper_errors: list[HelperErrorCount] = []    # read at stop()
        self.exited = False
        self.exit_code = 0                     # exit(code)'s, for the host to exit with
        # zero()ed array maps: their zero values are entries that exist (a hash keeps the keys)
        self._zeroed: set[str] = set()
        self.loaded: LoadedObject | None = None
        self._ring: DrainingReader | None = None
        # skboutput(): its perf buffers and pcap files, made only when the script calls it
        self._packets: tuple[PerfBuffers, PcapFiles] | None = None
        # printf and print(value) records decode by their spec's argument types: compiled once
        self._decoders = [slot_decoder(p.args, compiled.probe_names) for p in compiled.printfs]
        self._attachments: list[Attachment] = []
        # watchpoints by the address they watch, for unwatch(addr)
        self._watches: dict[int, list[Attachment]] = {}
        self._stopped = False
        self._next_stack_scan = 0.0
        self.symbols = symbols.Symbols()       # this session's kernel and user symbol tables
        self.probes_attached = 0               # attach points attached now (BEGIN's once it ran)
        # Held by another thread while it reads the maps (a metrics scrape) and by close() while it
        # releases the fds: no read ever reaches an fd number the process has reused since.
        self.reading = threading.Lock()

    def start(self, run_begin: bool = True) -> None:
        """Load, attach every probe, then run BEGIN (not with run_begin=False: a dry run). On
        failure everything is released again."""
        try:
            obj = self.compiled.object
            self.loaded = load(obj, self.compiled)
            self._ring = DrainingReader(RingBufferReader(self.loaded.map_fds[EVENTS_MAP],
                                                         obj.maps[EVENTS_MAP].max_entries))
            if STACKS_MAP in self.loaded.map_fds:
                self.symbols.stacks = symbols.StackTable(self.loaded.map_fds[STACKS_MAP], maps.lookup,
                                                         self.symbols)
            symbols.activate(self.symbols)
            if SKB_OUTPUT_MAP in self.loaded.map_fds:
                from pybpf.runtime.pcap import PcapFiles        # here: few scripts call skboutput()
                from pybpf.runtime.perfbuf import PerfBuffers

                files = PcapFiles(self.compiled.pcap_files)
                try:
                    self._packets = PerfBuffers(self.loaded.map_fds[SKB_OUTPUT_MAP]), files
                except BaseException:
                    files.close()
                    raise
            # `elapsed` counts from here: bpf_ktime_get_ns is CLOCK_MONOTONIC.
            start = self.loaded.map_fds[START_MAP]
            maps.update(start, START_NSECS.to_bytes(4, "little"), time.monotonic_ns().to_bytes(8, "little"))
            for slot, value in ((START_CPID, self.child_pid), (START_TRACED, self.traced_pid)):
                if value:
                    maps.update(start, slot.to_bytes(4, "little"), value.to_bytes(8, "little"))
            self.output.attached(self.compiled.attach_count)
            self._attach_all(lambda kind: kind not in RUN_ONCE)
            if run_begin:
                self._attach_all(lambda kind: kind == RUN_AT_START)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """Readable when events are waiting, for the host's own event loop."""
        return self._ring.fileno()

    def poll(self, timeout_s: float) -> bool:
        """Wait up to timeout_s, dispatch every waiting event; False once the program called exit()
        (or the session was closed)."""
        if self._ring is None:
            return False
        self._ring.poll(timeout_s, self._dispatch)
        self._write_packets()
        self._remember_stack_processes()
        if not self.exited and self._read_exit_flag():
            self.exited = True       # exit() ran, though its record was lost to a full ring
        return not self.exited

    def stop(self) -> None:
        """Detach, run END, read the last events, print the maps and the lost-event count, release all."""
        if self._stopped or self.loaded is None:
            self.close()
            return
        self._stopped = True
        try:
            # Most of stop()'s time: closing a tracepoint's perf event waits for an RCU grace period
            # in the kernel (~70 ms each here), and disabling the event would not stop the program.
            self._detach()
            self._ring.stop()                    # what is left is read here, in order
            self._ring.poll(0, self._dispatch)
            self._ring.ring.consume(self._dispatch)   # room for END's records even if it filled up
            self._attach_all(lambda kind: kind == RUN_AT_STOP)
            self._ring.ring.consume(self._dispatch)
            self._write_packets()
            if self.compiled.print_maps_on_exit:
                self.output.maps_at_exit([(spec, self.read_map(spec)) for spec in self.compiled.maps])
            lost = self.lost_events()
            if lost:
                self.output.lost(lost)
            self._final_helper_errors = self.helper_errors()
            line = helper_errors.summary(self._final_helper_errors)
            if line:
                self.warn(line)
        finally:
            self.close()

    def close(self) -> None:
        """Release every attachment, the ring buffer and every fd. Idempotent."""
        self._stopped = True
        self._detach()
        with self.reading:
            if self._ring is not None:
                self._ring.close()
                self._ring = None
            if self._packets is not None:
                for part in self._packets:
                    part.close()
                self._packets = None
            if self.loaded is not None:
                symbols.deactivate(self.symbols)
                self.loaded.close()
                self.loaded = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _remember_stack_processes(self) -> None:
        """Keep the mappings of the processes in user-stack keys while they run, every
        STACK_SCAN_INTERVAL_S, so their frames still resolve when they have exited by the time
        the maps print."""
        now = time.monotonic()
        if STACKS_MAP not in self.loaded.map_fds or now < self._next_stack_scan:
            return
        self._next_stack_scan = now + STACK_SCAN_INTERVAL_S
        users = self.symbols.users
        for spec in self.compiled.maps:
            pid_offsets = [off + 8 for t, off in zip(spec.key, T.slot_offsets(spec.key))
                           if isinstance(t, T.StackType) and t.user]
            if not pid_offsets:
                continue
            for key in maps.keys(self._map_fd(spec), spec.key_size):
                for off in pid_offsets:
                    users.remember(int.from_bytes(key[off:off + 8], "little"))

    def helper_errors(self) -> list[HelperErrorCount]:
        """The failures of every checked helper call so far, one count per call site (in the
        order of CompiledProgram.helper_sites; see pybpf.runtime.helper_errors); after stop(),
        the counts it read last."""
        if self.loaded is None:
            return list(self._final_helper_errors)
        fd = self.loaded.map_fds.get(HELPER_ERRORS_MAP)
        return helper_errors.read_counts(fd, self.compiled.helper_sites) if fd is not None else []

    def _attach_all(self, wanted) -> None:
        total = sum(wanted(p.attach_kind) for program in self.compiled.programs for p in program.attach_points)
        done, shown = 0, time.monotonic()
        for program in self.compiled.programs:
            prog_fd = self.loaded.prog_fds[program.section]
            if program.raw_tracepoint:
                if wanted(program.attach_points[0].attach_kind):
                    shared = AttachPoint("rawtracepoint", program.raw_tracepoint, attach_kind="rawtracepoint")
                    self._attachments.append(attach(prog_fd, shared, program))
                    done += len(program.attach_points)
                continue
            if attaches_together(program):
                if wanted(program.attach_points[0].attach_kind):
                    together = attach_together(prog_fd, program)
                    self._attachments.append(together)
                    for warning in together.warnings:
                        self.warn(warning)
                    done += len(program.attach_points) - len(together.warnings)
                continue
            for point in program.attach_points:
                if wanted(point.attach_kind):
                    try:
                        self._attachments.append(attach(prog_fd, point, program))
                    except NotSupportedError as e:
                        self._unattached(point.name, e)
                        total -= 1
                        continue
                    if point.perf_event is not None and point.perf_event.type == PerfType.BREAKPOINT:
                        self._watches.setdefault(point.perf_event.config1, []).append(self._attachments[-1])
                    done += 1
                    if time.monotonic() - shown >= PROGRESS_EVERY_S and done < total:
                        shown = time.monotonic()
                        self.warn(f"Attaching {total} probes... {done}/{total}")
        self.probes_attached += done

    def _unattached(self, probe: str, reason: NotSupportedError) -> None:
        """A point the kernel refused (a tracepoint that takes no perf event, a function it cannot
        probe): the missing_probes setting decides, as in bpftrace."""
        setting = self.compiled.missing_probes
        if setting == "error":
            if isinstance(reason, ProbeUnavailableError):
                raise reason        # its one line already names the probe and why the kernel refuses
            raise ProbeAttachError(probe, reason) from None
        if setting == "warn":
            self.warn(f"WARNING: {reason}")
            self.warn(f"WARNING: Unable to attach probe: {probe}. Skipping.")

    def _detach(self) -> None:
        # Closing a tracepoint's perf event waits for RCU grace periods (~70 ms here); closed by
        # DETACH_THREADS at once, the waits for the BPF program's detach overlap (the tracepoint's
        # own unregistering is serialised by the kernel, ~40 ms each). A raw tracepoint link closes
        # in ~0.15 ms without waiting: a thread each (2,305 for tracepoint:*:*) cost more than that.
        attachments, self._attachments = self._attachments, []
        self.probes_attached = 0

        def close_pending() -> None:
            while attachments:
                try:
                    attachment = attachments.pop()      # atomic: the closers share the list
                except IndexError:
                    return
                attachment.close()

        threads = [threading.Thread(target=close_pending)
                   for _ in range(min(len(attachments), DETACH_THREADS) - 1)]
        for t in threads:
            t.start()
        close_pending()
        for t in threads:
            t.join()

    def _dispatch(self, record: memoryview) -> None:
        kind, index = _HEADER.unpack_from(record)
        if kind == EventKind.PRINTF:
            spec = self.compiled.printfs[index]
            args = self._decoders[index](record, EVENT_HEADER_SIZE)
            self.output.printf(format_printf(spec.fmt, args))
        elif kind == EventKind.ERRORF:
            args = self._decoders[index](record, EVENT_HEADER_SIZE)
            self.output.located("errorf", format_printf(self.compiled.printfs[index].fmt, args),
                                lambda text: print(text, file=sys.stderr, flush=True))
        elif kind == EventKind.WARNF:
            args = self._decoders[index](record, EVENT_HEADER_SIZE)
            self.output.located("warnf", format_printf(self.compiled.printfs[index].fmt, args),
                                self.warn)
        elif kind == EventKind.SYSTEM:
            args = self._decoders[index](record, EVENT_HEADER_SIZE)
            result = run_command(format_printf(self.compiled.printfs[index].fmt, args))
            if result.error:
                print(f"ERROR: {result.error}", file=sys.stderr, flush=True)
            if result.output:
                self.output.syscall(result.output)
        elif kind == EventKind.CAT:
            args = self._decoders[index](record, EVENT_HEADER_SIZE)
            result = read_file(format_printf(self.compiled.printfs[index].fmt, args),
                               self.compiled.max_cat_bytes)
            if result.error:
                print(f"ERROR: {result.error}", file=sys.stderr, flush=True)
            if result.output:
                self.output.cat(result.output)
        elif kind == EventKind.JOIN:
            count, *strings = self._decoders[index](record, EVENT_HEADER_SIZE)
            self.output.join(self.compiled.printfs[index].fmt.join(strings[:count]))
        elif kind == EventKind.VALUE:
            (value,) = self._decoders[index](record, EVENT_HEADER_SIZE)
            self.output.value(value)
        elif kind == EventKind.EXIT:
            self.exited = True
            self._read_exit_flag()
        elif kind == EventKind.PRINT:
            spec = self.compiled.maps[index]
            entries = self.read_map(spec)
            if len(record) >= EVENT_HEADER_SIZE + _PRINT_LIMITS.size:
                top, div = _PRINT_LIMITS.unpack_from(record, EVENT_HEADER_SIZE)
                entries = top_entries(spec, entries, top, div)
            self.output.map(spec, entries)
        elif kind == EventKind.CLEAR:
            spec = self.compiled.maps[index]
            maps.clear_map(self._map_fd(spec), spec)
            self._zeroed.discard(spec.name)
        elif kind == EventKind.ZERO:
            spec = self.compiled.maps[index]
            maps.zero_map(self._map_fd(spec), spec)
            self._zeroed.add(spec.name)
        elif kind == EventKind.TIME:
            self.output.time(time.strftime(self.compiled.time_formats[index]))
        elif kind == EventKind.UNWATCH:
            self._unwatch(_ADDRESS.unpack_from(record, EVENT_HEADER_SIZE)[0])
        elif kind == EventKind.HELPER_ERROR:
            site, errno_ = index & ((1 << SITE_BITS) - 1), index >> SITE_BITS
            self.output.helper_error(self.compiled.helper_sites[site], -errno_, self.warn)
        elif kind == EventKind.RUNTIME_WARNING:
            self.warn(self.compiled.runtime_warnings[index])
        else:
            raise ValueError(f"ring buffer record of unknown kind {kind}")

    def _write_packets(self) -> None:
        """skboutput()'s samples so far into their pcap files."""
        if self._packets is not None:
            buffers, files = self._packets
            buffers.read(files.write)
            files.flush()

    def _unwatch(self, address: int) -> None:
        """unwatch(addr): detach the watchpoints on addr (none left: nothing happens, as bpftrace)."""
        for attachment in self._watches.pop(address, []):
            self._attachments.remove(attachment)
            attachment.close()
            self.probes_attached -= 1

    def _read_exit_flag(self) -> bool:
        """Whether exit() ran; takes its exit code (EXIT_MAP holds 1 | code << 8)."""
        fd = self.loaded.map_fds.get(EXIT_MAP)
        value = maps.lookup(fd, bytes(4), 8) if fd is not None else None
        flag = int.from_bytes(value, "little") if value else 0
        if flag:
            self.exit_code = flag >> 8
        return bool(flag)

    def read_map(self, spec: MapSpec) -> list[tuple[tuple, object]]:
        """A user map's entries now (as printed at exit)."""
        return maps.read_user_map(self._map_fd(spec), spec, self.compiled.probe_names,
                                  keep_zero=spec.name in self._zeroed)

    def map_batches(self, spec: MapSpec, prefilter: maps.Prefilter | None = None):
        """read_map's entries a batch at a time (maps.user_map_batches), e.g. for a metrics scrape
        that keeps the top entries of a big map."""
        return maps.user_map_batches(self._map_fd(spec), spec, self.compiled.probe_names,
                                     keep_zero=spec.name in self._zeroed, prefilter=prefilter)

    def lost_events(self) -> int:
        """Events the ring buffer refused so far: the count stop() prints."""
        return maps.read_lost(self.loaded.map_fds[LOST_MAP])

    def _map_fd(self, spec: MapSpec) -> int:
        return self.loaded.map_fds[spec.symbol]
