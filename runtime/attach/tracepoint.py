"""tracepoint:CATEGORY:NAME -> one perf event of type PERF_TYPE_TRACEPOINT (it fires on every CPU).
(A program that does not read the record attaches as a raw tracepoint instead: attach/rawtracepoint.)

    attachment = attach(prog_fd, AttachPoint('tracepoint', 'syscalls:sys_enter_openat'))
"""

from __future__ import annotations

import errno
import os

from pybpf import tracefs
from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_perf_event
from pybpf.runtime.errors import NotSupportedError
from pybpf.uapi.perf_event import PerfEventAttr, PerfType



def tracepoint_id(target: str) -> int:
    """The perf event config of CATEGORY:NAME: its id in tracefs (mounted there if it was not)."""
    category, _, name = target.partition(":")
    try:
        path = os.path.join(tracefs.root(), "events", category, name, "id")
        with open(path) as f:
            return int(f.read())
    except tracefs.TracefsError as e:
        raise NotSupportedError("tracepoint", errno.ENOENT, str(e)) from None
    except FileNotFoundError:
        raise NotSupportedError("tracepoint", errno.ENOENT,
                                f"this kernel has no tracepoint {target!r} ({path} is missing)") from None


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    """A point with a cookie (its program is shared) is linked with it (BPF_LINK_CREATE)."""
    attr = PerfEventAttr(type=PerfType.TRACEPOINT, config=tracepoint_id(point.target))
    return attach_perf_event(prog_fd, attr, cpu=0, cookie=point.cookie)
