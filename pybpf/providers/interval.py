"""interval: a cpu-clock perf event on one CPU that runs the program at a fixed period, or N times
a second with `hz` (profile.py is the same on every CPU). The context is the perf sample, which
offers no arguments. The period is written as bpftrace 0.26 takes it:

    interval:ms:100     interval:100ms     interval:100000000     (all 100 ms; a bare N is in ns)
    interval:hz:5       interval:5hz                              (5 times a second)
    interval:1s { print(@); }      # probe: interval:s:1
"""

from __future__ import annotations

import re

from pybpf.providers.base import Context, ProbeGroup, Provider
from pybpf.uapi.bpf import BpfProgType

# bpftrace's duration units (the suffixes of its integer literals); `hz` is a rate.
UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_COUNT_WITH_UNIT = re.compile(r"([0-9][0-9_]*)(ns|us|ms|s|m|h|d|hz)?")


class Timer(Provider):
    context = Context.PERF_SAMPLE
    prog_type = BpfProgType.PERF_EVENT
    section = "perf_event"

    def __init__(self, name: str, spellings: tuple[str, ...], spread_hz: bool):
        self.name, self.spellings, self.attach_kind = name, spellings, name
        self.filtered_by_pid = name != "interval"      # a profile samples the process; an interval runs anywhere
        # A profile in hz samples at that frequency: the kernel spreads the samples (period 0).
        self.spread_hz = spread_hz

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        unit, sep, count = target.partition(":")
        if not sep:                                  # interval:100ms, interval:5hz, interval:N (ns)
            written = _COUNT_WITH_UNIT.fullmatch(target)
            count, unit = (written[1], written[2] or "ns") if written else ("", "")
        count = count.replace("_", "")
        if not count.isdigit() or int(count) <= 0 or unit not in (*UNITS_NS, "hz"):
            raise ValueError(f"invalid {self.name} probe: {text} (expected {self.name}:UNIT:N, "
                             f"{self.name}:N<UNIT> or {self.name}:N in ns, with N > 0 and UNIT one "
                             "of ns, us, ms, s, m, h, d, hz)")
        # Every spelling becomes UNIT:N, the name `probe` shows and the run side reads.
        canonical = f"{unit}:{int(count)}"
        if unit == "hz":
            group.add(self.point(canonical, 0 if self.spread_hz else 1_000_000_000 // int(count)))
        else:
            group.add(self.point(canonical, int(count) * UNITS_NS[unit]))


INTERVAL = Timer("interval", ("interval", "i"), spread_hz=False)
