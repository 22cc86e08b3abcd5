"""A BPF program attached to a perf event: the part tracepoints, intervals (and later uprobes,
profile) share.

    attachment = attach_perf_event(prog_fd, PerfEventAttr(type=..., config=...), cpu=0, what='t:...')
    attachment.close()        # closing the perf event fd detaches the program
"""

from __future__ import annotations

import os

from pybpf.runtime.syscall import ioctl, perf_event_open
from pybpf.uapi.perf_event import (PERF_ATTR_FLAG_DISABLED, PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF,
                                   PerfEventAttr, pmu_retprobe_format_file, pmu_type_file)


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


def pmu_type(pmu: str) -> int | None:
    """The perf type of a dynamic PMU ('kprobe', 'uprobe'), or None when this kernel lacks it."""
    try:
        with open(pmu_type_file(pmu)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def retprobe_bit(pmu: str) -> int:
    """The bit of `config` that makes a kprobe/uprobe a return probe ('config:0' in its format file)."""
    try:
        with open(pmu_retprobe_format_file(pmu)) as f:
            text = f.read().strip()
    except OSError:
        return 0
    field, _, bit = text.partition(":")
    return int(bit.split("-")[0]) if field == "config" and bit[:1].isdigit() else 0
