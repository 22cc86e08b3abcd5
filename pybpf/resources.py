"""Lay-out pass: the checked program -> the resources its BPF object will hold.

    plan = plan_resources(checked)
    plan.maps["@"]                   # MapSpec(name='@', symbol='AT_', kind=MapKind.COUNT, ...)
    plan.printf_index[call_node]     # which PrintfSpec a printf() call emits
    plan.programs                    # BpfProgramPlan per BPF program: section, prog type, points

One program per probe group, split further when the tracepoints it attaches to lay out the `args`
fields it reads differently: the layout is baked into the code.

A group's syscall tracepoints of one direction (sys_enter_* or sys_exit_*) share one program when
there are two or more of them: it attaches once, to the raw tracepoint every syscall passes
(sys_enter or sys_exit), and keeps its syscalls by number (see SyscallFilter). Closing a perf event
on a tracepoint waits for RCU grace periods the kernel serialises (~40 ms each here), so a wildcard
over N syscalls would take N times that to detach; the raw tracepoint detaches at once. The price:
the program also runs, and returns at once, on the syscalls it does not keep (~15 ns each here).

The group's other tracepoints, when the block reads nothing of the context (no `args`, `ctx`,
`kstack`: builtins.reads_context), attach as the raw tracepoint of the same name, which fires at the
same place (~0.2 ms to attach and to detach each), all through one program. Those that stay perf
events share a program per `args` layout. Where a shared program reads `probe`, each point attaches
with its probe id as its bpf cookie, which the program reads (Features.attach_cookies; without
them, a program per point).

A wildcard's uprobes of one binary attach through one uprobe_multi link where the kernel has them
(Features.uprobe_multi), one program for them all (`probe` and `func` by cookie), unless the
block calls uaddr().
"""

from __future__ import annotations

import os
import re

from pybpf import ast, builtins
from pybpf.features import Features, FixedFeatures
from pybpf.program import (STACKS_MAP_ENTRIES, SYNTHETIC_PROBE_ID_BASE, AttachPoint, MapSpec,
                           PrintfSpec)
from pybpf.checked import CheckedScript
from pybpf.providers.base import ProbeGroup, Provider
from pybpf.providers.rawtracepoint import BTF_RAWTRACEPOINT, RAWTRACEPOINT
from pybpf.providers.tracepoint import TRACEPOINT, raw_tracepoint_points
from pybpf.records import factory, record, replace
from pybpf.uapi.bpf import BpfAttachType

# Tracepoint record fields a shared syscall program can produce: the number, then the arguments
# (8 bytes each from offset 16; sys_exit's `ret` is there too). common_* fields are refused in any
# tracepoint: the verifier denies a record's first 8 bytes.
SYSCALL_NR_FIELD = "__syscall_nr"
SYSCALL_ARGS_OFFSET = 16
RAW_SYSCALL_TRACEPOINTS = {"sys_enter_": "sys_enter", "sys_exit_": "sys_exit"}


@record(frozen=True)
class SyscallFilter:
    """A program shared by syscall tracepoints: attached to raw tracepoint `raw_tracepoint`, it runs
    on syscall numbers `numbers` ((number, value of `probe`) pairs) and returns at once on others."""
    raw_tracepoint: str
    numbers: tuple[tuple[int, int], ...]


@record
class BpfProgramPlan:
    group: ProbeGroup
    points: tuple[AttachPoint, ...]
    section: str
    function: str
    prog_type: int
    probe_id: int               # the value of `probe` in this program (but see syscall_filter)
    expected_attach_type: int = 0
    attach_btf_id: int = 0
    syscall_filter: SyscallFilter | None = None
    probe_from_cookie: bool = False     # `probe` is the cookie each point attached with


@record
class ResourcePlan:
    maps: dict[str, MapSpec] = factory(dict)
    printfs: list[PrintfSpec] = factory(list)
    printf_index: dict = factory(dict)      # printf/print Call node -> index
    time_formats: list[str] = factory(list)
    time_index: dict = factory(dict)        # time Call node -> index
    pcap_files: list[str] = factory(list)
    pcap_index: dict = factory(dict)        # skboutput Call node -> index
    programs: list[BpfProgramPlan] = factory(list)
    probe_names: dict[int, str] = factory(dict)
    # The stack-trace map's entries (used where a script reads kstack/ustack): as many as a map
    # may have keys, so that a map keyed by stacks can fill, and at least STACKS_MAP_ENTRIES.
    stack_entries: int = STACKS_MAP_ENTRIES

    def map_index(self, name: str) -> int:
        return list(self.maps).index(name)

    def add_printf(self, call: ast.Call, spec: PrintfSpec) -> None:
        self.printf_index[call] = _intern(self.printfs, spec)

    def add_time_format(self, call: ast.Call, fmt: str) -> None:
        self.time_index[call] = _intern(self.time_formats, fmt)

    def add_pcap_file(self, call: ast.Call, path: str) -> None:
        self.pcap_index[call] = _intern(self.pcap_files, path)


def map_symbol(name: str) -> str:
    return "AT_" + re.sub(r"\W", "_", name[1:])


def _field_accesses(checked: CheckedScript, probe: ast.Probe) -> list[ast.FieldAccess]:
    """The probe's reads of context fields, found once per probe: a walk per attach point would
    cost the probe's size (its attach points among it) for every point."""
    return [n for n in ast.walk(probe) if isinstance(n, ast.FieldAccess) and n in checked.fields]


def _field_layout(checked: CheckedScript, accesses: list[ast.FieldAccess], point: AttachPoint) -> tuple:
    return tuple((n.field, checked.fields[n][point.name])
                 for n in accesses if point.name in checked.fields[n])


def _uses_constant_per_point(probe: ast.Probe) -> bool:
    """`probe`, `func` and uaddr() are constants baked into the code."""
    return ast.reads_builtin(probe, "probe") or _uses_point_constant(probe)


def _uses_point_constant(probe: ast.Probe) -> bool:
    """A constant of the point other than `probe`: `func`, uaddr()."""
    return ast.reads_builtin(probe, "func") or _calls_uaddr(probe)


def _calls_uaddr(probe: ast.Probe) -> bool:
    """uaddr() adds the load bias of the point's binary, found from the point's own address."""
    return any(isinstance(n, ast.Call) and n.name == "uaddr" for n in ast.walk(probe))


def _reads_numbered_args(probe: ast.Probe) -> bool:
    return any(isinstance(n, ast.Builtin) and re.fullmatch(r"arg\d+", n.name) for n in ast.walk(probe))


def syscall_number(point: AttachPoint) -> tuple[str, int] | None:
    """(raw tracepoint, syscall number) of tracepoint syscalls:sys_enter_NAME / sys_exit_NAME, when
    this machine's syscall numbers are known."""
    from pybpf.uapi import unistd_64

    category, _, name = point.target.partition(":")
    if point.provider != TRACEPOINT.name or category != "syscalls" or \
            os.uname().machine != unistd_64.ARCH:
        return None
    for prefix, raw in RAW_SYSCALL_TRACEPOINTS.items():
        if name.startswith(prefix):
            number = unistd_64.SYSCALL_NUMBERS.get(name[len(prefix):])
            return None if number is None else (raw, number)
    return None


def _shareable_layout(layout: tuple) -> bool:
    return all(name == SYSCALL_NR_FIELD or (f.offset >= SYSCALL_ARGS_OFFSET and f.size == 8
                                            and not f.data_loc and f.array_len is None)
               for name, f in layout)


def _shared_syscall_points(checked: CheckedScript, group: ProbeGroup,
                           accesses: list[ast.FieldAccess]) -> dict[str, list]:
    """raw tracepoint -> [(point, syscall number)] of the group's points that can share a program:
    two or more per direction, all reading the same argument fields the same way."""
    if group.provider is not TRACEPOINT or ast.reads_builtin(group.probe, "func"):
        return {}
    by_raw: dict[str, list] = {}
    for point in group.points:
        found = syscall_number(point)
        if found is not None:
            by_raw.setdefault(found[0], []).append((point, found[1]))
    shared = {}
    for raw, members in by_raw.items():
        layouts = {_field_layout(checked, accesses, point) for point, _ in members}
        if len(members) >= 2 and len(layouts) == 1 and _shareable_layout(layouts.pop()):
            shared[raw] = members
    return shared


def _plan_programs(checked: CheckedScript, plan: ResourcePlan, share_syscalls: bool,
                   group_tracepoints: bool, features: Features) -> None:
    for group in checked.groups:
        accesses = _field_accesses(checked, group.probe)
        shared = _shared_syscall_points(checked, group, accesses) if share_syscalls else {}
        for raw, members in shared.items():
            numbers = tuple((number, _probe_id(plan, group, point)) for point, number in members)
            _add_program(plan, group, tuple(point for point, _ in members), RAWTRACEPOINT,
                         numbers[0][1], SyscallFilter(raw, numbers))
        taken = {point for members in shared.values() for point, _ in members}
        rest = [point for point in group.points if point not in taken]
        grouped = group_tracepoints and group.provider is TRACEPOINT
        if grouped:
            rest = _plan_raw_tracepoints(plan, group, rest, features)
        if group.provider.multi_attach_kind and len(rest) > 1 and features.uprobe_multi():
            rest = _plan_multi_uprobes(plan, group, rest)
        # `probe` is a constant baked into the code, so a block that reads it needs a program per
        # attach point, unless the points attach with cookies. (The tracepoint record cannot tell:
        # syscall tracepoints hand BPF a record whose first 8 bytes, common_type among them, are a
        # pt_regs pointer.)
        # fentry/fexit programs are loaded against their one function's BTF id, as BTF
        # tracepoints against their typedef's. USDT sites share a program when their arguments
        # are in the same places.
        kind = BTF_RAWTRACEPOINT if group.provider is RAWTRACEPOINT and \
            builtins.needs_tracing_program(group.probe) else group.provider
        per_point = _uses_constant_per_point(group.probe) or bool(kind.expected_attach_type)
        cookies = per_point and grouped and features.attach_cookies(TRACEPOINT.prog_type)
        site_args = bool(group.site_args) and _reads_numbered_args(group.probe)
        partitions: dict[tuple, list[AttachPoint]] = {}
        for point in rest:
            layout = (point,) if per_point and not cookies else \
                _field_layout(checked, accesses, point)
            if site_args:
                layout += group.site_args[point]
            partitions.setdefault(layout, []).append(point)
        for points in partitions.values():
            _add_shared_program(plan, group, points, kind)


def _plan_raw_tracepoints(plan: ResourcePlan, group: ProbeGroup, points: list[AttachPoint],
                          features: Features) -> list[AttachPoint]:
    """Plans the program of the tracepoints that attach as raw tracepoints, when the block reads
    nothing of the context (one per point when it reads `probe` and cookies are missing);
    -> the points left to attach as perf events."""
    if not points or builtins.reads_context(group.probe):
        return points
    raw = raw_tracepoint_points(points)
    if not raw:
        return points
    members = [replace(point, attach_kind=RAWTRACEPOINT.attach_kind) for point in points
               if point in raw]
    if not _uses_constant_per_point(group.probe) or features.attach_cookies(RAWTRACEPOINT.prog_type):
        _add_shared_program(plan, group, members, RAWTRACEPOINT)
    else:
        for point in members:
            _add_program(plan, group, (point,), RAWTRACEPOINT, _probe_id(plan, group, point))
    return [point for point in points if point not in raw]


def _plan_multi_uprobes(plan: ResourcePlan, group: ProbeGroup,
                        points: list[AttachPoint]) -> list[AttachPoint]:
    """The uprobes of one binary, two or more, through one program attached by one uprobe_multi
    link (runtime/attach/uprobe_multi.py), `probe` and `func` chosen by each point's cookie;
    unless the block calls uaddr(), a constant of each point's code. -> the points left."""
    if _calls_uaddr(group.probe):
        return points
    by_binary: dict[str, list[AttachPoint]] = {}
    for point in points:
        by_binary.setdefault(point.target.partition(":")[0], []).append(point)
    left = []
    for members in by_binary.values():
        if len(members) < 2:
            left += members
            continue
        _add_shared_program(plan, group, [replace(point, attach_kind=group.provider.multi_attach_kind)
                                          for point in members], group.provider,
                            BpfAttachType.TRACE_UPROBE_MULTI)
    return left


def _add_shared_program(plan: ResourcePlan, group: ProbeGroup, points: list[AttachPoint],
                        kind: Provider, expected_attach_type: int | None = None) -> None:
    """One program for `points`; when there are several and the block reads `probe`, each attaches
    with its probe id as its cookie, which the program reads."""
    if len(points) > 1 and _uses_constant_per_point(group.probe):
        points = [replace(point, cookie=_probe_id(plan, group, point)) for point in points]
        _add_program(plan, group, tuple(points), kind, points[0].cookie, probe_from_cookie=True,
                     expected_attach_type=expected_attach_type)
    else:
        _add_program(plan, group, tuple(points), kind, _probe_id(plan, group, points[0]),
                     expected_attach_type=expected_attach_type)


def _probe_id(plan: ResourcePlan, group: ProbeGroup, point: AttachPoint) -> int:
    probe_id = SYNTHETIC_PROBE_ID_BASE + len(plan.probe_names)
    plan.probe_names[probe_id] = group.written_names.get(point.name, point.name)
    return probe_id


def _add_program(plan: ResourcePlan, group: ProbeGroup, points: tuple[AttachPoint, ...],
                 kind: Provider, probe_id: int, syscall_filter: SyscallFilter | None = None,
                 probe_from_cookie: bool = False, expected_attach_type: int | None = None) -> None:
    """`kind` is the provider whose program type and section the code is built for (and, unless
    given, its expected attach type)."""
    n = len(plan.programs)
    plan.programs.append(BpfProgramPlan(
        group, points, f"{kind.section}/p{n}", f"probe_{n}", int(kind.prog_type), probe_id,
        int(kind.expected_attach_type if expected_attach_type is None else expected_attach_type),
        group.btf_target.get(points[0].name, 0) if kind.expected_attach_type else 0,
        syscall_filter, probe_from_cookie))


def plan_resources(checked: CheckedScript, map_entries: int | None = None,
                   share_syscalls: bool = True, group_tracepoints: bool = True,
                   features: Features = FixedFeatures()) -> ResourcePlan:
    """share_syscalls: syscall tracepoints through one program on raw sys_enter/sys_exit;
    group_tracepoints: other tracepoints as raw tracepoints, and points sharing programs through
    cookies (the module's docstring); features: whether the kernel has cookies."""
    plan = ResourcePlan(stack_entries=max(STACKS_MAP_ENTRIES, map_entries or 0))
    for name in sorted(checked.maps):
        info = checked.maps[name]
        extra = {"max_entries": map_entries} if map_entries else {}
        plan.maps[name] = MapSpec(name, map_symbol(name), info.kind, info.key, info.value,
                                  info.lhist, hist_bits=info.hist_bits, tseries=info.tseries,
                                  **extra)
    for node in ast.walk(checked.program):
        entry = builtins.function(node.name) if isinstance(node, ast.Call) else None
        if entry is not None and entry.layout is not None:
            entry.layout(plan, checked, node)
    _plan_programs(checked, plan, share_syscalls, group_tracepoints, features)
    return plan


def _intern(items: list, item) -> int:
    if item in items:
        return items.index(item)
    items.append(item)
    return len(items) - 1
