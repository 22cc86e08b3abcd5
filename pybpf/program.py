"""The compiled program: the one record that crosses from compile time to run time.

    compiled = pybpf.compile_source('t:syscalls:sys_enter_openat { @[comm] = count(); }')
    compiled.elf                       # the BPF ELF object (maps in section "maps", one section per program)
    compiled.object.programs           # that ELF parsed: instructions and map relocations per section
    compiled.maps[0].name              # '@'
    compiled.maps[0].kind              # MapKind.COUNT
    CompiledProgram.from_data(compiled.to_data())   # what the compile cache stores (pybpf.cache)

The runtime needs nothing else: not the AST, not the type checker. Byte layouts of keys, values and
ring-buffer records are defined here, once, as properties both sides use; a map value's layout is
its kind's (pybpf.mapkinds, which MapSpec asks).

Ring-buffer record: u32 EventKind, u32 index (printf / map / time-format index), then the payload at
offset 8 (printf arguments, each in an 8-byte-aligned slot; see pybpf.types.slot_size).
"""

from __future__ import annotations

import enum
import mmap

from pybpf import types as T
from pybpf.errors import PybpfError
from pybpf.mapkinds import MapKind, kind_for
from pybpf.records import astuple, factory, record
from pybpf.uapi.bpf import BpfMapType

TYPE_CHECKING = False       # a cache hit imports only the map kinds its maps have
if TYPE_CHECKING:
    from pybpf.mapkinds import LhistParams, TSeriesParams

# Symbols of the maps every program has, in the ELF "maps" section.
EVENTS_MAP = "__pybpf_events"        # BPF_MAP_TYPE_RINGBUF: printf/exit/print/... records
SKB_OUTPUT_MAP = "__pybpf_skb_output"   # BPF_MAP_TYPE_PERF_EVENT_ARRAY: skboutput()'s packets
LOST_MAP = "__pybpf_lost"            # BPF_MAP_TYPE_PERCPU_ARRAY[1] of u64: records the ring buffer refused
START_MAP = "__pybpf_start"          # BPF_MAP_TYPE_ARRAY of u64 set at start, by slot:
START_NSECS, START_CPID, START_TRACED = 0, 1, 2   # nsecs at start (base of `elapsed`); the -c command's
START_SLOTS = 3                                   # pid (`cpid`); the process -p/-c filter probes to
EXIT_MAP = "__pybpf_exit"            # BPF_MAP_TYPE_ARRAY[1] of u64: set by exit(), whose ring-buffer
                                     # record a full buffer may refuse: 1 | exit code << 8
HELPER_ERRORS_MAP = "__pybpf_helper_errors"   # PERCPU_ARRAY[len(helper_sites)] of u64: the failures of
                                              # each HelperErrorSite, at its index

STACKS_MAP = "__pybpf_stacks"        # BPF_MAP_TYPE_STACK_TRACE: the frames of kstack/ustack ids, made
                                     # only when the script reads a stack
STACKS_MAP_ENTRIES = 4096
SCRATCH_MAP = "__pybpf_scratch"      # PERCPU_ARRAY, one entry per program whose buffers outgrow the
                                     # 512-byte BPF stack (strings, records): made only then

EVENT_HEADER_SIZE = 8
# A HELPER_ERROR record's index: the site in its low SITE_BITS, the errno (< 4096) above.
SITE_BITS = 20
ERRNO_MASK = 0xFFF
DEFAULT_MAP_ENTRIES = 4096
# The event ring buffer, when --ringbuf-size does not size it (bytes; the kernel wants a power of
# two, a multiple of the page size): room for EVENT_RING_RECORDS_PER_CPU of the script's largest
# record per possible CPU, at most EVENT_RING_MAX_SIZE (backend.codegen.event_ring_size). The
# kernel allocates it at map creation and the tracer maps its pages (they count in its RSS), so
# it is no larger than the script needs; a drain thread empties it as records come
# (runtime/ringbuf.DrainingReader), and the ring only has to hold what the producers write while
# that thread waits for a CPU. A script that writes no record gets one page.
EVENT_RING_RECORDS_PER_CPU = 16384
EVENT_RING_MAX_SIZE = 32 << 20
# The largest event ring buffer a user may ask for (--ringbuf-size, BPFTRACE_PERF_RB_PAGES).
RINGBUF_MAX_SIZE = 1 << 30


def ring_size_of_pages(pages: int, cpus: int) -> int:
    """The event ring buffer BPFTRACE_PERF_RB_PAGES asks for, as bpftrace 0.26 sizes its ring
    (BPFtrace::get_buffer_pages: at least a page a CPU; libbpf rounds it up to a power of two)."""
    size = max(pages, cpus) * mmap.PAGESIZE
    return min(1 << (size - 1).bit_length(), RINGBUF_MAX_SIZE)

# The value of `probe` is SYNTHETIC_PROBE_ID_BASE + k, one k per attach point or program;
# probe_names names it.
SYNTHETIC_PROBE_ID_BASE = 1 << 32


class EventKind(enum.IntEnum):
    PRINTF = 1
    EXIT = 2
    PRINT = 3      # print(@m): index is the map's index in CompiledProgram.maps; print(@m, top,
                   # div) adds the two as int64 slots
    CLEAR = 4
    ZERO = 5
    TIME = 6       # time(FMT): index into CompiledProgram.time_formats
    VALUE = 7      # print(value): index into printfs, whose one argument types the value
    ERRORF = 8     # errorf(fmt, ...): index into printfs, whose format starts with the location
    WARNF = 9      # warnf(fmt, ...): the same, a warning
    SYSTEM = 10    # system(fmt, ...): index into printfs; the formatted text is the command
    JOIN = 11      # join(argv, sep): index into printfs, whose format is the separator and whose
                   # arguments are the count, then the strings
    CAT = 12       # cat(fmt, ...): index into printfs; the formatted text names the file
    HELPER_ERROR = 13   # a helper failed where bpftrace warns; no payload: the index is the site
                        # (in helper_sites) | errno << SITE_BITS
    UNWATCH = 14   # unwatch(addr): the address, a u64; its watchpoints are detached
    RUNTIME_WARNING = 15    # a run-time check failed where bpftrace warns (an array index out of
                            # bounds); no payload: the index is the warning in runtime_warnings


@record(frozen=True)
class MapSpec:
    """A user map (@name). Its kind (pybpf.mapkinds) decides the BPF layout: aggregations live in
    per-CPU maps and the runtime combines the CPUs.

    BPF key: the key parts in slots (a scalar map has one u64 zero key), then for hist/lhist a u64
    bucket index; a scalar aggregation in a per-CPU array has a u32 index instead (is_array).
    BPF value: kind_for(kind).value_size(spec) bytes (per CPU).
    """
    name: str
    symbol: str
    kind: MapKind
    key: tuple[T.ValueType, ...]
    value: T.Type
    lhist: LhistParams | None = None
    max_entries: int = DEFAULT_MAP_ENTRIES
    hist_bits: int = 0              # hist(v, k): 2^k buckets per power of two
    tseries: TSeriesParams | None = None

    @property
    def is_array(self) -> bool:
        """Scalar maps of kinds whose value tells "never set" apart (a zero count, an unset flag)
        live in a per-CPU array indexed by bucket (or 0): the kernel inlines the lookup, no
        hashing."""
        return not self.key and kind_for(self.kind).scalar_in_array

    @property
    def user_key_size(self) -> int:
        return sum(T.slot_size(k) for k in self.key) if self.key else 8

    @property
    def key_size(self) -> int:
        if self.is_array:
            return 4
        return self.user_key_size + (8 if kind_for(self.kind).has_buckets else 0)

    @property
    def bpf_max_entries(self) -> int:
        return kind_for(self.kind).array_entries(self) if self.is_array else self.max_entries

    @property
    def value_size(self) -> int:
        return kind_for(self.kind).value_size(self)

    @property
    def percpu(self) -> bool:
        return kind_for(self.kind).percpu

    @property
    def bpf_map_type(self) -> int:
        if self.is_array:
            return BpfMapType.PERCPU_ARRAY
        return BpfMapType.PERCPU_HASH if self.percpu else BpfMapType.HASH

    def to_json(self) -> dict:
        return {
            "name": self.name, "symbol": self.symbol, "kind": self.kind.value,
            "key": [T.to_json(k) for k in self.key], "value": T.to_json(self.value),
            "lhist": [self.lhist.min, self.lhist.max, self.lhist.step] if self.lhist else None,
            "max_entries": self.max_entries, "hist_bits": self.hist_bits,
            "tseries": list(self.tseries) if self.tseries else None,
        }

    @classmethod
    def from_json(cls, j: dict) -> "MapSpec":
        from pybpf import mapkinds

        return cls(j["name"], j["symbol"], MapKind(j["kind"]),
                   tuple(T.from_json(k) for k in j["key"]), T.from_json(j["value"]),
                   mapkinds.LhistParams(*j["lhist"]) if j["lhist"] else None, j["max_entries"],
                   j["hist_bits"], mapkinds.TSeriesParams(*j["tseries"]) if j["tseries"] else None)


@record(frozen=True)
class HelperErrorSite:
    """A call of a BPF helper that can fail, whose failures the program counts in HELPER_ERRORS_MAP
    at this site's index (CompiledProgram.helper_sites), and reports as HELPER_ERROR records when
    `warns` (bpftrace's warnings: pybpf.runtime.helper_errors prints them).

    `map` names the user map a map helper acted on ('' for others). `errno`: 0 counts every
    failure but those the code handles itself (an insert's EEXIST race); E2BIG (at a map insert)
    counts the inserts refused because the map was full, a site of its own beside the insert's
    other failures. `location` and `context` are
    the call's source span as a diagnostic shows it ('stdin:1:9-22', then the source line and its
    `~~~` marker), rendered at compile time so the runtime needs no source."""
    helper: str
    map: str
    errno: int
    warns: bool
    location: str
    context: tuple[str, ...]
    line: int
    column: int

    def to_json(self) -> list:
        return [self.helper, self.map, self.errno, self.warns, self.location, list(self.context),
                self.line, self.column]

    @classmethod
    def from_json(cls, j: list) -> "HelperErrorSite":
        helper, map_name, errno, warns, location, context, line, column = j
        return cls(helper, map_name, errno, warns, location, tuple(context), line, column)


@record(frozen=True)
class HelperErrorCount:
    """The failures of one helper call site: `helper` ('map_update_elem'), the user `map` it acted
    on ('' for other helpers), its `location` in the source ('stdin:1:9-22'), whether these are
    the inserts a full map refused (`map_full`; the other failures of the same insert count apart),
    and how many there were, summed over the CPUs."""
    helper: str
    map: str
    location: str
    map_full: bool
    count: int


@record(frozen=True)
class PrintfSpec:
    """printf(fmt, args...): arguments follow the record header, each in its own slot."""
    fmt: str
    args: tuple[T.ValueType, ...]


@record(frozen=True)
class PerfEvent:
    """What a point on a perf event counts (software:, hardware:, watchpoint:): perf_event_attr's
    type (PERF_TYPE_*) and config, how many events pass between two runs of the program, for a
    breakpoint its address (config1), length (config2) and HW_BREAKPOINT_* type, and the one
    process it watches (pid -1: every process, one event per CPU). A uprobe point limited to one
    process (-p) carries only its pid; a usdt point its site's file offset (config2) and its
    semaphore's ref_ctr_offset in config's high bits, type 0 (the uprobe PMU's, read at attach)."""
    type: int
    config: int
    sample_period: int
    config1: int = 0
    config2: int = 0
    bp_type: int = 0
    pid: int = -1


@record(frozen=True)
class AttachPoint:
    """One place a program attaches: ('tracepoint', 'syscalls:sys_enter_openat'), ('BEGIN', ''),
    ('interval', 'ms:100'). period_ns is set for interval and profile, perf_event for the points
    on a perf event.

    `provider` names the probe kind as the user knows it (for messages); `attach_kind` is how the
    run side attaches it: a key of pybpf.runtime.attach.ATTACHERS, chosen by the front end's
    provider (pybpf.providers), so neither side needs the other's names. A tracepoint whose program
    does not read its record may attach as a raw tracepoint ('rawtracepoint').

    `cookie`, when not 0, is the bpf cookie the point attaches with: the value of `probe` in a
    program that several points share (bpf_get_attach_cookie)."""
    provider: str
    target: str = ""
    period_ns: int = 0
    attach_kind: str = ""
    perf_event: PerfEvent | None = None
    cookie: int = 0

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.target}" if self.target else self.provider

    def to_json(self) -> list:
        event = self.perf_event
        return [self.provider, self.target, self.period_ns, self.attach_kind,
                list(astuple(event)) if event else None, self.cookie]

    @classmethod
    def from_json(cls, j: list) -> "AttachPoint":
        provider, target, period_ns, attach_kind, event, cookie = j
        return cls(provider, target, period_ns, attach_kind, PerfEvent(*event) if event else None,
                   cookie)


@record(frozen=True)
class BpfProgramSpec:
    """One BPF program: the ELF section holding its code, its prog type and where it attaches.
    BTF-typed programs (fentry/fexit) also name their expected attach type and the vmlinux BTF
    id of their target, which BPF_PROG_LOAD needs. A program shared by syscall tracepoints names
    the raw tracepoint it attaches to once (sys_enter, sys_exit) instead of its attach points,
    which it tells apart by syscall number itself."""
    section: str
    prog_type: int
    attach_points: tuple[AttachPoint, ...]
    expected_attach_type: int = 0
    attach_btf_id: int = 0
    raw_tracepoint: str = ""


@record(frozen=True)
class MapDef:
    """A map definition as the ELF's "maps" section holds it."""
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0


@record(frozen=True)
class ElfProgramSection:
    """One executable section of the ELF: the instructions the loader patches and loads."""
    name: str
    insns: bytes
    relocations: dict[int, str]  # byte offset of a ld_imm64 in insns -> map symbol
    # (instruction index, source line, column), ascending, from the .BTF.ext line info
    lines: tuple[tuple[int, int, int], ...] = ()
    # (first instruction, BTF FUNC id) of each function, when the section has callbacks besides
    # its main function: BPF_PROG_LOAD's func_info, against ObjectSpec.btf
    func_info: tuple[tuple[int, int], ...] = ()

    def source_of(self, insn: int) -> tuple[int, int] | None:
        """(line, column) of the statement that instruction `insn` belongs to."""
        found = None
        for index, line, column in self.lines:
            if index > insn:
                break
            found = (line, column)
        return found


class ObjectFormatError(PybpfError):
    """The ELF object does not have the shape the loader expects (see MapDef, ElfProgramSection)."""


@record(frozen=True)
class ObjectSpec:
    """The ELF object as the loader needs it (pybpf.backend.objspec.parse_object reads it)."""
    maps: dict[str, MapDef]
    programs: dict[str, ElfProgramSection]
    license: str
    btf: bytes = b""        # the functions' BTF, when a section has func_info (backend.progbtf)

    def to_json(self) -> dict:
        return {"maps": {k: [m.map_type, m.key_size, m.value_size, m.max_entries, m.map_flags]
                         for k, m in self.maps.items()},
                "programs": {k: [p.insns.hex(), {str(o): sym for o, sym in p.relocations.items()},
                                 [list(line) for line in p.lines], [list(f) for f in p.func_info]]
                             for k, p in self.programs.items()},
                "license": self.license, "btf": self.btf.hex()}

    @classmethod
    def from_json(cls, j: dict) -> "ObjectSpec":
        return cls({k: MapDef(*v) for k, v in j["maps"].items()},
                   {k: ElfProgramSection(k, bytes.fromhex(insns), {int(o): sym for o, sym in relocs.items()},
                                         tuple(tuple(line) for line in lines),
                                         tuple(tuple(f) for f in func_info))
                    for k, (insns, relocs, lines, func_info) in j["programs"].items()},
                   j["license"], bytes.fromhex(j["btf"]))


@record
class CompiledProgram:
    """elf is the object as LLVM wrote it; `object` is that ELF parsed, once, by the compiler: the
    run side loads from it and never reads the ELF."""
    elf: bytes
    object: ObjectSpec
    programs: tuple[BpfProgramSpec, ...]
    maps: tuple[MapSpec, ...]
    printfs: tuple[PrintfSpec, ...] = ()
    time_formats: tuple[str, ...] = ()
    probe_names: dict[int, str] = factory(dict)
    # (line, column, end line, end column) of the statements whose code the ELF's line info
    # locates: a verifier rejection is shown on its statement.
    statement_spans: tuple[tuple[int, int, int, int], ...] = ()
    print_maps_on_exit: bool = True       # the print_maps_on_exit setting
    missing_probes: str = "error"         # the missing_probes setting: a point the kernel refuses to attach
    max_cat_bytes: int = 10240            # the max_cat_bytes setting: what cat() prints at most
    verifier_log_size: int = 1000000      # the log_size setting: the verifier log's buffer
    # The compiler's warnings, rendered: shown at each run, from the cache too.
    warnings: tuple[str, ...] = ()
    # pybpf.facts (kind, subject, value): what compiled-in values came from; the compile cache
    # reuses the program only while they hold.
    depends_on: tuple[tuple[str, str, str], ...] = ()
    # The helper calls whose failures are counted (HELPER_ERRORS_MAP), by counter index.
    helper_sites: tuple[HelperErrorSite, ...] = ()
    # The warnings of run-time checks other than helpers', rendered (place, message, source line),
    # by the index a RUNTIME_WARNING record carries.
    runtime_warnings: tuple[str, ...] = ()
    # skboutput()'s files, by the index its samples carry (pybpf.runtime.pcap)
    pcap_files: tuple[str, ...] = ()

    @property
    def attach_count(self) -> int:
        return sum(len(p.attach_points) for p in self.programs)

    def to_data(self) -> dict:
        """The program as plain data (dicts, lists, strings, numbers: JSON's kinds of values), what
        the compile cache stores."""
        return {
            "elf": self.elf.hex(),
            "object": self.object.to_json(),
            "programs": [[p.section, p.prog_type,
                          [a.to_json() for a in p.attach_points],
                          p.expected_attach_type, p.attach_btf_id, p.raw_tracepoint]
                         for p in self.programs],
            "maps": [m.to_json() for m in self.maps],
            "printfs": [[p.fmt, [T.to_json(a) for a in p.args]] for p in self.printfs],
            "time_formats": list(self.time_formats),
            "probe_names": {str(k): v for k, v in self.probe_names.items()},
            "statement_spans": [list(span) for span in self.statement_spans],
            "print_maps_on_exit": self.print_maps_on_exit,
            "missing_probes": self.missing_probes,
            "max_cat_bytes": self.max_cat_bytes,
            "verifier_log_size": self.verifier_log_size,
            "warnings": list(self.warnings),
            "depends_on": [list(fact) for fact in self.depends_on],
            "helper_sites": [site.to_json() for site in self.helper_sites],
            "runtime_warnings": list(self.runtime_warnings),
            "pcap_files": list(self.pcap_files),
        }

    @classmethod
    def from_data(cls, j: dict) -> "CompiledProgram":
        return cls(
            elf=bytes.fromhex(j["elf"]),
            object=ObjectSpec.from_json(j["object"]),
            programs=tuple(BpfProgramSpec(s, t, tuple(AttachPoint.from_json(a) for a in aps), eat, btf_id, raw)
                           for s, t, aps, eat, btf_id, raw in j["programs"]),
            maps=tuple(MapSpec.from_json(m) for m in j["maps"]),
            printfs=tuple(PrintfSpec(f, tuple(T.from_json(a) for a in args))
                          for f, args in j["printfs"]),
            time_formats=tuple(j["time_formats"]),
            probe_names={int(k): v for k, v in j["probe_names"].items()},
            statement_spans=tuple(tuple(span) for span in j["statement_spans"]),
            print_maps_on_exit=j["print_maps_on_exit"],
            missing_probes=j["missing_probes"],
            max_cat_bytes=j["max_cat_bytes"],
            verifier_log_size=j["verifier_log_size"],
            warnings=tuple(j["warnings"]),
            depends_on=tuple(tuple(fact) for fact in j["depends_on"]),
            helper_sites=tuple(HelperErrorSite.from_json(site) for site in j["helper_sites"]),
            runtime_warnings=tuple(j["runtime_warnings"]),
            pcap_files=tuple(j["pcap_files"]),
        )
