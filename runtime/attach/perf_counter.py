"""A program on a perf event that counts (software:page-faults, hardware:cycles, watchpoint:ADDR:8:w):
AttachPoint.perf_event's type, config (and breakpoint address, length and type), running the
program every sample_period events; one event per online CPU, or one following the watched
process.

    attach(prog_fd, AttachPoint('software', 'page-faults:1', attach_kind='perf_counter',
                                perf_event=PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, 1)))

A machine without a PMU (most VMs) has no hardware events: perf_event_open says ENOENT (or
EOPNOTSUPP), which becomes ProbeUnavailableError in one line.
"""

from __future__ import annotations

import errno

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_on_every_cpu, attach_perf_event
from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.uapi.perf_event import PerfEventAttr, PerfType


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    event = point.perf_event
    if event is None or event.sample_period <= 0:
        raise ValueError(f"{point.name}: a perf counter needs an event and a positive sample period")
    attr = PerfEventAttr(type=event.type, config=event.config, sample_period=event.sample_period,
                         config1=event.config1, config2=event.config2, bp_type=event.bp_type)
    try:
        if event.pid >= 0:
            return attach_perf_event(prog_fd, attr, cpu=-1, pid=event.pid)
        return attach_on_every_cpu(prog_fd, attr)
    except BpfError as e:
        why = _refusals.get((event.type, e.errno))
        if why is None:
            raise
        raise ProbeUnavailableError("perf_event_open", e.errno, f"{point.name}: "
                                    f"{why.format(pid=event.pid)} (perf_event_open: "
                                    f"{errno.errorcode[e.errno]})") from None


# What perf_event_open's refusals mean, by (event type, errno).
_refusals = {
    (PerfType.HARDWARE, errno.ENOENT): "this machine has no hardware performance counters",
    (PerfType.HARDWARE, errno.EOPNOTSUPP): "this machine has no hardware performance counters",
    (PerfType.BREAKPOINT, errno.ESRCH): "there is no process {pid} to watch",
    (PerfType.BREAKPOINT, errno.EINVAL): "the CPU cannot watch this: an address aligned to LEN, for "
                                         "writes (w), accesses (rw) or execution (x)",
}
