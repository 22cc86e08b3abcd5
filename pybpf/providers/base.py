"""The interface every probe kind answers (one module per kind in this package), and the group of
attach points it resolves into.

    provider = providers.find("kr")            # the KRETPROBE provider
    provider.context                           # Context.PT_REGS: arguments in registers
    provider.retval, provider.func             # True, True: `retval` and `func` mean something here
    provider.prog_type, provider.attach_kind   # BpfProgType.KPROBE, 'kretprobe'
    provider.resolve("kr:vfs_read", "vfs_read", group)    # appends AttachPoints to the group
    provider.list_probes("vfs_rea*")                # ['kretprobe:vfs_read', ...]   (-l)
    provider.describe("vfs_read")              # argument lines                (-lv)
"""

from __future__ import annotations

import enum

from pybpf import ast
from pybpf.errors import PybpfError
from pybpf.program import AttachPoint, PerfEvent
from pybpf.records import factory, record
from pybpf.uapi.bpf import BpfProgType


class ListingError(PybpfError):
    """The probe does not exist, or its provider has nothing to list or describe."""


class ProbeNotFound(ValueError):
    """The probe names nothing this kernel or binary has (the missing_probes setting decides)."""


class Context(enum.Enum):
    """What a program's context pointer points at."""
    NONE = "none"                           # BEGIN/END: run with an empty context
    TRACEPOINT_RECORD = "tracepoint record"  # laid out by the tracepoint's format file
    BTF_ARGS = "BTF arguments"              # one u64 per argument (then fexit's return value)
    PT_REGS = "pt_regs"                     # arguments in registers, the return value in ax
    PERF_SAMPLE = "perf sample"             # struct bpf_perf_event_data


class Args(enum.Enum):
    """Where `args.NAME` comes from."""
    NONE = "none"
    TRACEPOINT_FORMAT = "format file"
    BTF = "BTF"


def has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


@record
class ProbeGroup:
    """The attach points of one probe that share a provider: compiled into one BPF program."""
    probe: ast.Probe
    provider: Provider
    points: list[AttachPoint] = factory(list)
    formats: dict = factory(dict)     # by point name: tracefs.TracepointFormat
    # BTF-typed probes, by point name: the arguments (name, BTF type id), the return type id
    # (fexit), and the BTF id the program is loaded against (fentry/fexit: the FUNC).
    btf_args: dict[str, list] = factory(dict)
    btf_return: dict[str, int] = factory(dict)
    btf_target: dict[str, int] = factory(dict)
    # A probe moved to the other mechanism for a kernel function (kprobe <-> fentry): its points'
    # names as the user wrote them, which `probe` shows.
    written_names: dict[str, str] = factory(dict)
    # uprobes typed from DWARF (pybpf.dwarf_args): the split BTF (over the kernel's) that their
    # btf_args ids are in, and by point name the arguments that cannot be read, with why.
    user_btf: object = None
    refused_args: dict[str, dict[str, str]] = factory(dict)
    # USDT: each site's arguments (pybpf.usdt_notes.UsdtArg), by point: sites differ in where
    # their arguments are, so points with different ones get programs of their own.
    site_args: dict[AttachPoint, tuple] = factory(dict)
    pid: int | None = None                  # -p PID: the process user-space probes look in
    depends_on: set = factory(set)    # pybpf.facts: the binaries points came from
    # `points` as a set: a wildcard adds thousands, and a list's `in` made adding them quadratic
    # (4 s for tracepoint:*:*).
    _added: set[AttachPoint] = factory(set)

    def add(self, point: AttachPoint) -> None:
        if point not in self._added:
            self._added.add(point)
            self.points.append(point)

    def set_points(self, points: list[AttachPoint]) -> None:
        self.points, self._added = points, set(points)

    def move_to(self, other: Provider) -> None:
        """The same targets through another provider (kprobe -> fentry), named as written."""
        moved = []
        for point in self.points:
            new = other.point(point.target)
            for table in (self.btf_args, self.btf_return, self.btf_target):
                if point.name in table:
                    table[new.name] = table.pop(point.name)
            self.written_names[new.name] = point.name
            moved.append(new)
        self.provider = other
        self.set_points(moved)


class Provider:
    """One probe kind. Subclasses set the class attributes and override what differs."""
    name: str                                   # canonical: 'kretprobe'
    spellings: tuple[str, ...]                  # what a user may write: ('kretprobe', 'kr')
    context: Context = Context.NONE
    args: Args = Args.NONE                      # args.NAME
    numbered_args: bool = False                 # arg0 .. arg5
    retval: bool = False
    func: bool = False                          # the probed function's name
    prog_type: BpfProgType
    section: str                                # ELF section prefix: 'kretprobe/p3'
    expected_attach_type: int = 0               # set: one program per target, loaded against it
    multi_attach_kind: str = ""                 # set: many points of one binary may share one link
    attach_kind: str                            # how the run side attaches (runtime/attach)
    alternative: str = ""                       # another provider for the same targets (kprobe <-> fentry)
    watches_process: bool = False               # its points need the process to watch (-p PID)
    # -p/-c run its program only in the traced process (not BEGIN, END, interval: not the process's)
    filtered_by_pid: bool = True
    listed_by_default: bool = False             # `-l` without a provider lists these
    user_memory: bool = False                   # a pointer cast in its probes is a process's

    def point(self, target: str = "", period_ns: int = 0,
              perf_event: PerfEvent | None = None) -> AttachPoint:
        return AttachPoint(self.name, target, period_ns, self.attach_kind, perf_event)

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        """Add the attach points `text` names to `group` (wildcards expanded, each checked), or
        raise ValueError with the message the user sees."""
        raise NotImplementedError

    def numbered_arg_error(self, group: ProbeGroup, index: int) -> str | None:
        """Why arg`index` cannot be read in this group (None: it can); asked when numbered_args."""
        from pybpf.uapi.ptrace import ARGUMENT_REGISTERS
        if index >= len(ARGUMENT_REGISTERS):
            return f"only arg0 to arg{len(ARGUMENT_REGISTERS) - 1} are passed in registers"
        return None

    def available(self, group: ProbeGroup, features) -> bool:
        """Whether this kernel takes the group's probes through this provider (pybpf.features);
        asked only of providers with an alternative."""
        return True

    def list_probes(self, pattern: str) -> list[str]:
        """`-l PROVIDER:PATTERN`: the probe names matching, sorted."""
        return []

    def describe(self, target: str) -> list[str]:
        """`-lv`: the argument lines printed under the probe's name."""
        raise ListingError(f"{self.name}:{target}: -lv does not describe {self.name} probes")
