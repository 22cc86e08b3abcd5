"""interval:UNIT:N: a cpu-clock perf event on one CPU that runs the program every N units, or N
times a second with `hz` (profile.py is the same on every CPU). The context is the perf sample,
which offers no arguments.

    interval:ms:100 { print(@); }
"""

from __future__ import annotations

from pybpf.providers.base import Context, ProbeGroup, Provider
from pybpf.uapi.bpf import BpfProgType

UNITS_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


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
        unit, _, count = target.partition(":")
        if unit == "hz" and count.isdigit() and int(count) > 0:
            group.add(self.point(target, 0 if self.spread_hz else 1_000_000_000 // int(count)))
        elif unit in UNITS_NS and count.isdigit() and int(count) > 0:
            group.add(self.point(target, int(count) * UNITS_NS[unit]))
        else:
            raise ValueError(f"invalid {self.name} probe: {text} (expected {self.name}:UNIT:N with "
                             "UNIT one of s, ms, us, ns, hz)")


INTERVAL = Timer("interval", ("interval", "i"), spread_hz=False)
