"""watchpoint:ADDR:LEN:MODE and asyncwatchpoint:ADDR:LEN:MODE: a hardware breakpoint on LEN bytes
(1, 2, 4 or 8) at address ADDR of one process (-p PID), which runs the program on every access
of MODE: any of r, w, x (this CPU takes w, rw and x). The context is the perf sample, which offers
no arguments. With an absolute address the two spellings are the same probe; bpftrace's async
form only differs for watchpoints on a function's argument, which pybpf does not take yet.

    pybpf -p 1234 -e 'watchpoint:0x7ffd4c3a9abc:4:w { @writes = count(); }'
"""

from __future__ import annotations

from pybpf.program import PerfEvent
from pybpf.providers.base import Context, ProbeGroup, Provider
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.perf_event import HW_BREAKPOINT_LENS, HwBreakpoint, PerfType

_MODES = {"r": HwBreakpoint.R, "w": HwBreakpoint.W, "x": HwBreakpoint.X}


class Watchpoint(Provider):
    context = Context.PERF_SAMPLE
    prog_type = BpfProgType.PERF_EVENT
    section = "perf_event"
    attach_kind = "perf_counter"
    watches_process = True

    def __init__(self, name: str, spellings: tuple[str, ...]):
        self.name, self.spellings = name, spellings

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        address, _, rest = target.partition(":")
        length, _, mode = rest.partition(":")
        try:
            addr = int(address, 0)
        except ValueError:
            addr = 0
        if addr <= 0:
            raise ValueError(f"invalid {self.name} probe: {text} (ADDR must be a non-zero address; "
                             f"expected {self.name}:ADDR:LEN:MODE)")
        if not length.isdigit() or int(length) not in HW_BREAKPOINT_LENS:
            raise ValueError(f"invalid {self.name} probe: {text} (LEN must be 1, 2, 4 or 8)")
        if not mode or set(mode) - set(_MODES) or len(set(mode)) != len(mode):
            raise ValueError(f"invalid {self.name} probe: {text} (MODE must be a combination of r, "
                             "w and x)")
        bp_type = 0
        for c in mode:
            bp_type |= _MODES[c]
        group.add(self.point(f"{address}:{length}:{mode}", perf_event=PerfEvent(
            PerfType.BREAKPOINT, 0, 1, config1=addr, config2=int(length), bp_type=bp_type)))


WATCHPOINT = Watchpoint("watchpoint", ("watchpoint", "w"))
ASYNCWATCHPOINT = Watchpoint("asyncwatchpoint", ("asyncwatchpoint", "aw"))
