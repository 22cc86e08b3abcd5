"""A BPF program attached to a perf event: the part tracepoints, intervals (and later uprobes,
profile) share.

    attachment = attach_perf_event(prog_fd, PerfEventAttr(type=..., config=...), cpu=0, what='t:...')
    attachment.close()        # closing the perf event fd detaches the program
"""

from __future__ import annotations

import ctypes
import errno
import os

from pybpf.runtime.attach.link import perf_event_link
from pybpf.runtime.errors import ENOTSUPP, BpfError, NotSupportedError
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.runtime.syscall import ioctl, perf_event_open
from pybpf.uapi.perf_event import (PERF_ATTR_FLAG_DISABLED, PERF_EVENT_IOC_ENABLE, PERF_EVENT_IOC_SET_BPF,
                                   PerfEventAttr, pmu_retprobe_format_file, pmu_type_file)


ONLINE_CPUS_FILE = "/sys/devices/system/cpu/online"


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,5,7-8' -> [0, 1, 2, 3, 5, 7, 8]."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def online_cpus() -> list[int]:
    try:
        with open(ONLINE_CPUS_FILE) as f:
            return parse_cpu_list(f.read())
    except (OSError, ValueError):
        return sorted(os.sched_getaffinity(0))


class PerfEventAttachment:
    def __init__(self, fds: list[int]):
        self.fds = fds

    def close(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


def attach_perf_event(prog_fd: int, attr: PerfEventAttr, cpu: int, pid: int = -1,
                      cookie: int = 0) -> PerfEventAttachment:
    """Open the event disabled, give it the program, then enable it (pid -1: every task on `cpu`;
    for tracepoints the program then runs on every CPU; cpu -1 with a pid: that process wherever
    it runs). A cookie other than 0 gives the program through a bpf link carrying it; the link
    is closed before the event."""
    attr.flags |= PERF_ATTR_FLAG_DISABLED
    fds = [perf_event_open(attr, pid=pid, cpu=cpu)]
    try:
        if cookie:
            fds.append(perf_event_link(prog_fd, fds[0], cookie))
        else:
            ioctl(fds[0], PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF")
        ioctl(fds[0], PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")
    except BaseException:
        PerfEventAttachment(fds).close()
        raise
    return PerfEventAttachment(fds)


def attach_on_every_cpu(prog_fd: int, attr: PerfEventAttr) -> PerfEventAttachment:
    """One perf event per online CPU (offline ones are skipped), all running the program and
    closed together: events that count per CPU (sampling, software and hardware counters)."""
    attachment = PerfEventAttachment([])
    try:
        for cpu in online_cpus():
            one = attach_perf_event(prog_fd, attr, cpu=cpu)     # the kernel copies attr: reuse it
            attachment.fds.extend(one.fds)
    except BaseException:
        attachment.close()
        raise
    return attachment


def pmu_type(pmu: str) -> int | None:
    """The perf type of a dynamic PMU ('kprobe', 'uprobe'), or None when this kernel lacks it."""
    try:
        with open(pmu_type_file(pmu)) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def required_pmu_type(pmu: str, unavailable: str) -> int:
    """pmu_type, or ProbeUnavailableError(unavailable) when this kernel lacks the PMU."""
    perf_type = pmu_type(pmu)
    if perf_type is None:
        raise ProbeUnavailableError("perf_event_open", errno.ENOENT, unavailable)
    return perf_type


def retprobe_bit(pmu: str) -> int:
    """The bit of `config` that makes a kprobe/uprobe a return probe ('config:0' in its format file)."""
    try:
        with open(pmu_retprobe_format_file(pmu)) as f:
            text = f.read().strip()
    except OSError:
        return 0
    field, _, bit = text.partition(":")
    return int(bit.split("-")[0]) if field == "config" and bit[:1].isdigit() else 0


def attach_probe_pmu(prog_fd: int, pmu: str, perf_type: int, retprobe: bool, location: str,
                     offset: int, refused: str, config: int = 0,
                     pid: int = -1) -> PerfEventAttachment:
    """A kprobe or uprobe through its PMU: config1 points at `location` (a function name or a
    binary's path), config2 is the offset, the retprobe bit comes from sysfs, `config` adds bits
    (a uprobe's ref_ctr_offset); pid >= 0: that process only. A kernel that says ENOENT/EINVAL
    gets NotSupportedError(refused), as does one that cannot probe the instruction (ENOTSUPP)."""
    location_buf = ctypes.create_string_buffer(location.encode())    # alive through the call
    attr = PerfEventAttr(type=perf_type, config=config | ((1 << retprobe_bit(pmu)) if retprobe else 0),
                         config1=ctypes.addressof(location_buf), config2=offset)
    try:
        return attach_perf_event(prog_fd, attr, cpu=0 if pid < 0 else -1, pid=pid)
    except BpfError as e:
        if e.errno == ENOTSUPP:         # the instruction decoder declined it (uprobes on x86)
            raise ProbeUnavailableError(e.cmd, e.errno, f"{refused}: the kernel cannot probe the "
                                        "instruction there") from None
        if e.errno in (errno.ENOENT, errno.EINVAL) and not isinstance(e, NotSupportedError):
            raise NotSupportedError(e.cmd, e.errno, refused) from None
        raise
