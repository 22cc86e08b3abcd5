"""Lay-out pass: the checked program -> the resources its BPF object will hold.

    plan = plan_resources(checked)
    plan.maps["@"]                   # MapSpec(name='@', symbol='AT_', kind=MapKind.COUNT, ...)
    plan.printf_index[call_node]     # which PrintfSpec a printf() call emits
    plan.programs                    # ProgramPlan per BPF program: section, prog type, points

One program per probe group, split further when the tracepoints it attaches to lay out the `args`
fields it reads differently: the layout is baked into the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pybpf import ast
from pybpf import types as T
from pybpf.probes import ProbeGroup
from pybpf.program import (SYNTHETIC_PROBE_ID_BASE, AttachPoint, MapSpec, PrintfSpec)
from pybpf.checked import CheckedProgram, storable
from pybpf.uapi.bpf import BpfAttachType, BpfProgType

PROG_TYPES = {
    "BEGIN": BpfProgType.RAW_TRACEPOINT, "END": BpfProgType.RAW_TRACEPOINT,
    "tracepoint": BpfProgType.TRACEPOINT, "interval": BpfProgType.PERF_EVENT,
    "rawtracepoint": BpfProgType.RAW_TRACEPOINT,
    "kprobe": BpfProgType.KPROBE, "kretprobe": BpfProgType.KPROBE,
    "fentry": BpfProgType.TRACING, "fexit": BpfProgType.TRACING,
    "uprobe": BpfProgType.KPROBE, "uretprobe": BpfProgType.KPROBE,
    "profile": BpfProgType.PERF_EVENT,
}
SECTION_PREFIX = {"BEGIN": "raw_tracepoint", "END": "raw_tracepoint",
                  "tracepoint": "tracepoint", "interval": "perf_event",
                  "rawtracepoint": "raw_tracepoint", "kprobe": "kprobe", "kretprobe": "kretprobe",
                  "fentry": "fentry", "fexit": "fexit", "uprobe": "uprobe",
                  "uretprobe": "uretprobe", "profile": "perf_event"}
EXPECTED_ATTACH_TYPES = {"fentry": BpfAttachType.TRACE_FENTRY, "fexit": BpfAttachType.TRACE_FEXIT}

DEFAULT_TIME_FORMAT = "%H:%M:%S\n"


@dataclass
class ProgramPlan:
    group: ProbeGroup
    points: tuple[AttachPoint, ...]
    section: str
    function: str
    prog_type: int
    probe_id: int               # the value of `probe` in this program
    expected_attach_type: int = 0
    attach_btf_id: int = 0


@dataclass
class ResourcePlan:
    maps: dict[str, MapSpec] = field(default_factory=dict)
    printfs: list[PrintfSpec] = field(default_factory=list)
    printf_index: dict = field(default_factory=dict)      # printf/print Call node -> index
    time_formats: list[str] = field(default_factory=list)
    time_index: dict = field(default_factory=dict)        # time Call node -> index
    programs: list[ProgramPlan] = field(default_factory=list)
    probe_names: dict[int, str] = field(default_factory=dict)

    def map_index(self, name: str) -> int:
        return list(self.maps).index(name)


def map_symbol(name: str) -> str:
    return "AT_" + re.sub(r"\W", "_", name[1:])


def _field_layout(checked: CheckedProgram, probe: ast.Probe, point: AttachPoint) -> tuple:
    return tuple((n.field, checked.fields[n][point.name])
                 for n in ast.walk(probe) if isinstance(n, ast.FieldAccess) and n in checked.fields
                 and point.name in checked.fields[n])


def _uses_constant_per_point(probe: ast.Probe) -> bool:
    """`probe` and `func` are constants baked into the code."""
    return any(isinstance(n, ast.Builtin) and n.name in ("probe", "func")
               for n in ast.walk(probe))


def _plan_programs(checked: CheckedProgram, plan: ResourcePlan) -> None:
    for group in checked.groups:
        # `probe` is a constant baked into the code, so a block that reads it needs a program per
        # attach point. (The tracepoint record cannot tell: syscall tracepoints hand BPF a record
        # whose first 8 bytes, common_type among them, are a pt_regs pointer.)
        # fentry/fexit programs are loaded against their one function's BTF id.
        per_point = _uses_constant_per_point(group.probe) or group.provider in EXPECTED_ATTACH_TYPES
        partitions: dict[tuple, list[AttachPoint]] = {}
        for point in group.points:
            layout = (point,) if per_point else _field_layout(checked, group.probe, point)
            partitions.setdefault(layout, []).append(point)
        for points in partitions.values():
            n = len(plan.programs)
            probe_id = SYNTHETIC_PROBE_ID_BASE + n
            plan.probe_names[probe_id] = group.written_names.get(points[0].name, points[0].name)
            plan.programs.append(ProgramPlan(
                group, tuple(points), f"{SECTION_PREFIX[group.provider]}/p{n}", f"probe_{n}",
                int(PROG_TYPES[group.provider]), probe_id,
                int(EXPECTED_ATTACH_TYPES.get(group.provider, 0)),
                group.btf_target.get(points[0].name, 0) if group.provider in EXPECTED_ATTACH_TYPES
                else 0))


def plan_resources(checked: CheckedProgram, map_entries: int | None = None) -> ResourcePlan:
    plan = ResourcePlan()
    for name in sorted(checked.maps):
        info = checked.maps[name]
        extra = {"max_entries": map_entries} if map_entries else {}
        plan.maps[name] = MapSpec(name, map_symbol(name), info.kind, info.key, info.value,
                                  info.lhist, **extra)
    for node in ast.walk(checked.program):
        if not isinstance(node, ast.Call):
            continue
        if node.name == "printf" and node in checked.types:
            fmt = node.args[0].value.decode("utf-8", errors="replace")
            args = tuple(storable(checked.types[a]) for a in node.args[1:])
            plan.printf_index[node] = _intern(plan.printfs, PrintfSpec(fmt, args))
        elif node.name == "print" and node.args and not isinstance(node.args[0], ast.Map) \
                and node.args[0] in checked.types:
            t = storable(checked.types[node.args[0]])
            fmt = "%d\n" if isinstance(t, T.IntType) else "%s\n"
            plan.printf_index[node] = _intern(plan.printfs, PrintfSpec(fmt, (t,)))
        elif node.name == "time":
            fmt = node.args[0].value.decode() if node.args else DEFAULT_TIME_FORMAT
            plan.time_index[node] = _intern(plan.time_formats, fmt)
    _plan_programs(checked, plan)
    return plan


def _intern(items: list, item) -> int:
    if item in items:
        return items.index(item)
    items.append(item)
    return len(items) - 1
