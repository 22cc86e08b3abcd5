"""What kernel.bpf_stats_enabled costs: ns per traced syscall with the kernel's run-time
statistics off and on (the pybpf_program_* metrics need them on; docs/metrics.md).

    python3 -m benchmarks.run_stats_cost              # rounds of 2,000,000 getppid calls

Needs root and a C compiler. pybpf's library counts `getppid` calls in a map; the C loop of
benchmarks.common times N calls, alternately with the statistics off and on (on: an fd of
BPF_ENABLE_STATS held by this process, which counts like the sysctl and leaves it as it was).
Rounds with the statistics already on from elsewhere (the sysctl set) are reported as such.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys

import pybpf
from benchmarks.common import LOOP_COMM, run_loop
from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import BpfCmd

PROGRAM = f'tracepoint:syscalls:sys_enter_getppid /comm == "{LOOP_COMM}"/ {{ @calls = count(); }}'


class _EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32)]          # BPF_STATS_RUN_TIME


def per_call_ns(calls: int, stats: bool) -> float:
    fd = bpf(BpfCmd.ENABLE_STATS, _EnableStatsAttr(0)) if stats else None
    try:
        return run_loop("getppid", calls) / calls * 1e9
    finally:
        if fd is not None:
            os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        if f.read().strip() == "1":
            print("kernel.bpf_stats_enabled is 1 already: both columns count", file=sys.stderr)
    off, on = [], []
    with pybpf.compile(PROGRAM).run() as trace:
        for _ in range(args.rounds):
            off.append(per_call_ns(args.calls, False))
            on.append(per_call_ns(args.calls, True))
        counted = trace.maps["@calls"].value
    print(f"getppid, traced: {statistics.median(off):.1f} ns/call with statistics off, "
          f"{statistics.median(on):.1f} ns/call on: +{statistics.median(on) - statistics.median(off):.1f} ns "
          f"per program run (median of {args.rounds} rounds of {args.calls}; {counted} calls counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
