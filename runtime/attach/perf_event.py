"""A BPF program attached to a perf event: the part tracepoints, intervals (and later uprobes,
profile) share.

    attachment = attach_perf_event(prog_fd, PerfEventAttr(type=..., config=...), cpu=0, what='t:...')
    attachment.close()        # closing the perf event fd detaches the program
"""

from __future__ import annotations

import os

from pybpf.runtime.syscall import ioctl, perf_event_open
from pybpf.uapi.perf_event import (PERF_ATTR_FLAG_DISABLED, PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF,
                                   PerfEventAttr)


class PerfEventAttachment:
    def __init__(self, fds: list[int]):
        self.fds = fds

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


def attach_perf_event(prog_fd: int, attr: PerfEventAttr, cpu: int) -> PerfEventAttachment:
    """Open the event disabled, give it the program, then enable it (pid -1: every task on `cpu`;
    for tracepoints the program then runs on every CPU)."""
    attr.flags |= PERF_ATTR_FLAG_DISABLED
    fd = perf_event_open(attr, pid=-1, cpu=cpu)
    try:
        ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF")
        ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")
    except BaseException:
        os.close(fd)
        raise
    return PerfEventAttachment([fd])
