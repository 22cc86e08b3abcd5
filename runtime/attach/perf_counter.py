"""A program on a perf event that counts (software:page-faults, hardware:cycles): one event per online
CPU of AttachPoint.perf_event's type and config, running the program every sample_period events.

    attach(prog_fd, AttachPoint('software', 'page-faults:1', attach_kind='perf_counter',
                                perf_event=PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, 1)))

A machine without a PMU (most VMs) has no hardware events: perf_event_open says ENOENT (or
EOPNOTSUPP), which becomes ProbeUnavailableError in one line.
"""

from __future__ import annotations

import errno

from pybpf.program import AttachPoint, ProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_on_every_cpu
from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.uapi.perf_event import PerfEventAttr, PerfType


def attach(prog_fd: int, point: AttachPoint, program: ProgramSpec | None = None) -> PerfEventAttachment:
    event = point.perf_event
    if event is None or event.sample_period <= 0:
        raise ValueError(f"{point.name}: a perf counter needs an event and a positive sample period")
    attr = PerfEventAttr(type=event.type, config=event.config, sample_period=event.sample_period)
    try:
        return attach_on_every_cpu(prog_fd, attr)
    except BpfError as e:
        if event.type == PerfType.HARDWARE and e.errno in (errno.ENOENT, errno.EOPNOTSUPP):
            raise ProbeUnavailableError(
                "perf_event_open", e.errno, f"{point.name}: this machine has no hardware performance "
                f"counters (perf_event_open: {errno.errorcode[e.errno]})") from None
        raise
