"""interval:ms:100 -> a cpu-clock software perf event on CPU 0 sampling every period_ns; the program
(type PERF_EVENT) runs once per period, as bpftrace's interval probe does.

    attachment = attach(prog_fd, AttachPoint('interval', 'ms:100', period_ns=100_000_000))
"""

from __future__ import annotations

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_perf_event
from pybpf.uapi.perf_event import PERF_COUNT_SW_CPU_CLOCK, PerfEventAttr, PerfType


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    if point.period_ns <= 0:
        raise ValueError(f"{point.name}: interval needs a positive period, got {point.period_ns} ns")
    attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PERF_COUNT_SW_CPU_CLOCK, sample_period=point.period_ns)
    return attach_perf_event(prog_fd, attr, cpu=0)
