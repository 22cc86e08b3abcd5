"""profile:hz:99 / profile:ms:10 -> one cpu-clock software perf event per online CPU, each sampling at
that frequency (or period) and each running the program (type PERF_EVENT), as bpftrace's profile probe.
Closing the attachment closes them all.

    attachment = attach(prog_fd, AttachPoint('profile', 'hz:99'))
    attachment = attach(prog_fd, AttachPoint('profile', 'ms:10', period_ns=10_000_000))

'hz:N' sets sample_freq = N with the freq flag; 's:N', 'ms:N', 'us:N' (and 'ns:N') use
AttachPoint.period_ns as sample_period. Offline CPUs (not in /sys/devices/system/cpu/online) are skipped.
"""

from __future__ import annotations

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_on_every_cpu
from pybpf.uapi.perf_event import PERF_ATTR_FLAG_FREQ, PERF_COUNT_SW_CPU_CLOCK, PerfEventAttr, PerfType


def sample_attr(point: AttachPoint) -> PerfEventAttr:
    unit, _, value = point.target.partition(":")
    attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PERF_COUNT_SW_CPU_CLOCK)
    if unit == "hz":
        try:
            hz = int(value, 0)
        except ValueError:
            hz = 0
        if hz <= 0:
            raise ValueError(f"{point.name}: profile needs a positive frequency, got {value!r}")
        attr.sample_period = hz
        attr.flags |= PERF_ATTR_FLAG_FREQ
    else:
        if point.period_ns <= 0:
            raise ValueError(f"{point.name}: profile needs a positive period, got {point.period_ns} ns")
        attr.sample_period = point.period_ns
    return attr


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    return attach_on_every_cpu(prog_fd, sample_attr(point))
