"""Attaching programs, one module per way to attach, chosen by AttachPoint.attach_kind (which the
front end's provider names: the run side knows no probe spellings).

    point = AttachPoint('tracepoint', 'syscalls:sys_enter_openat', attach_kind='tracepoint')
    attachment = attach(prog_fd, point, program_spec)
    attachment.close()                 # detaches

Each module has `attach(prog_fd, point, program=None) -> Attachment` (anything with close()); `program`,
the BpfProgramSpec the fd was loaded from, tells a module that takes two program kinds which one it has
(rawtracepoint: RAW_TRACEPOINT or a BTF-typed TRACING program). A new way to attach is a new module
and a line in ATTACHERS. RUN_AT_START and RUN_AT_STOP programs run once when attached; the session
attaches them at start and at stop. A program whose points are of a kind in TOGETHER attaches them
all at once (`attach_together`: uprobe_multi, one link for a wildcard's uprobes).
"""

from __future__ import annotations

import errno

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.errors import NotSupportedError

RUN_AT_START = "begin"
RUN_AT_STOP = "end"
RUN_ONCE = (RUN_AT_START, RUN_AT_STOP)

# attach kind -> its module in this package, imported when a point of that kind attaches (a start
# imports only the ways its script attaches)
ATTACHERS = {
    RUN_AT_START: "begin_end",
    RUN_AT_STOP: "begin_end",
    "tracepoint": "tracepoint",
    "rawtracepoint": "rawtracepoint",
    "kprobe": "kprobe",
    "kretprobe": "kprobe",
    "fentry": "fentry",
    "uprobe": "uprobe",
    "uretprobe": "uprobe",
    "usdt": "usdt",
    "interval": "interval",
    "profile": "profile",
    "perf_counter": "perf_counter",
}

TYPE_CHECKING = False       # typing's own would import typing at every start
if TYPE_CHECKING:
    from typing import Protocol

    class Attachment(Protocol):
        def close(self) -> None: ...

    class TogetherAttachment(Attachment, Protocol):
        warnings: tuple[str, ...]       # points left out, said why

# attach kind -> the module in this package that attaches every point of a program at once
TOGETHER = {"uprobe_multi": "uprobe_multi", "uretprobe_multi": "uprobe_multi"}


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> Attachment:
    name = ATTACHERS.get(point.attach_kind)
    if name is None:
        raise NotSupportedError("attach", errno.EOPNOTSUPP,
                                f"{point.name}: attach kind {point.attach_kind!r} is not supported by the "
                                f"runtime (supported: {', '.join(sorted(ATTACHERS))})")
    # __import__ gives the submodule with a fromlist; importlib would be one more module at start
    return __import__(f"{__name__}.{name}", fromlist=("attach",)).attach(prog_fd, point, program)


def attaches_together(program: BpfProgramSpec) -> bool:
    return bool(program.attach_points) and program.attach_points[0].attach_kind in TOGETHER


def attach_together(prog_fd: int, program: BpfProgramSpec) -> TogetherAttachment:
    """Every point of the program through one attachment (attaches_together)."""
    name = TOGETHER[program.attach_points[0].attach_kind]
    return __import__(f"{__name__}.{name}", fromlist=("attach_points",)).attach_points(
        prog_fd, program.attach_points)
