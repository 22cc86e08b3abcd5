"""hardware:EVENT[:COUNT] (`h:`): a CPU performance counter (cycles, instructions, cache misses, ...)
that runs the program every COUNT events, one perf event per online CPU, as software.py's events.
A machine without a PMU (a VM like this one) refuses them when they attach, in one line.

    hardware:cache-misses:1000000 { @[comm] = count(); }
"""

from __future__ import annotations

from pybpf.providers.software import PerfCounter
from pybpf.uapi.perf_event import PerfHwId, PerfType

HARDWARE = PerfCounter("hardware", ("hardware", "h"), PerfType.HARDWARE, {
    "backend-stalls": (PerfHwId.STALLED_CYCLES_BACKEND, 1000000),
    "branch-instructions": (PerfHwId.BRANCH_INSTRUCTIONS, 100000),
    "branch-misses": (PerfHwId.BRANCH_MISSES, 100000),
    "bus-cycles": (PerfHwId.BUS_CYCLES, 100000),
    "cache-misses": (PerfHwId.CACHE_MISSES, 1000000),
    "cache-references": (PerfHwId.CACHE_REFERENCES, 1000000),
    "cpu-cycles": (PerfHwId.CPU_CYCLES, 1000000),
    "frontend-stalls": (PerfHwId.STALLED_CYCLES_FRONTEND, 1000000),
    "instructions": (PerfHwId.INSTRUCTIONS, 1000000),
    "ref-cycles": (PerfHwId.REF_CPU_CYCLES, 1000000),
}, aliases={"branches": "branch-instructions", "cycles": "cpu-cycles"})
