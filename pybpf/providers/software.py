"""software:EVENT[:COUNT] (`s:`): a kernel software event (page faults, context switches, ...) that
runs the program every COUNT events, with one perf event per online CPU; EVENT may be a wildcard.
COUNT defaults per event as bpftrace's does. The context is the perf sample, which offers no
arguments.

    software:page-faults:1 { @[comm] = count(); }      s:cs { @[comm] = count(); }

hardware.py is the same over the CPU's counters.
"""

from __future__ import annotations

import fnmatch
import re

from pybpf.program import PerfEvent
from pybpf.providers.base import Context, ProbeGroup, ProbeNotFound, Provider, has_wildcard
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.perf_event import PerfSwId, PerfType

_COUNT = re.compile(r"(?P<digits>\d+)(?:e(?P<exponent>\d+))?")      # 1000, 1e6


class PerfCounter(Provider):
    context = Context.PERF_SAMPLE
    prog_type = BpfProgType.PERF_EVENT
    section = "perf_event"
    attach_kind = "perf_counter"
    listed_by_default = True

    def __init__(self, name: str, spellings: tuple[str, ...], perf_type: PerfType,
                 events: dict[str, tuple[int, int]], aliases: dict[str, str]):
        """events: name -> (config, default count); aliases: another spelling -> name."""
        self.name, self.spellings, self.perf_type = name, spellings, perf_type
        self.events, self.aliases = events, aliases

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        event, _, count = target.partition(":")
        period = None
        if count:
            m = _COUNT.fullmatch(count)
            period = int(m["digits"]) * 10 ** int(m["exponent"] or 0) if m else 0
            if period <= 0:
                raise ValueError(f"invalid {self.name} probe: {text} (COUNT must be a positive "
                                 "integer)")
        # (event as named in the probe, its canonical name): a point keeps the user's spelling
        written = [(n, n) for n in sorted(self.events) if fnmatch.fnmatchcase(n, event)] \
            if has_wildcard(event) else [(event, self.aliases.get(event, event))]
        for shown, name in written:
            if name not in self.events:
                raise ValueError(f"unknown {self.name} event: {event} (pybpf -l '{self.name}:*' "
                                 "lists them)")
            config, default = self.events[name]
            group.add(self.point(f"{shown}:{count}" if count else shown,
                                 perf_event=PerfEvent(self.perf_type, config, period or default)))
        if not written:
            raise ProbeNotFound(f"{self.name} event not found: {event}")

    def list_probes(self, pattern: str) -> list[str]:
        return [f"{self.name}:{n}:" for n in sorted(self.events) if fnmatch.fnmatchcase(n, pattern)]

    def describe(self, target: str) -> list[str]:
        return []                  # a perf sample has no arguments


SOFTWARE = PerfCounter("software", ("software", "s"), PerfType.SOFTWARE, {
    "alignment-faults": (PerfSwId.ALIGNMENT_FAULTS, 1),
    "bpf-output": (PerfSwId.BPF_OUTPUT, 1),
    "context-switches": (PerfSwId.CONTEXT_SWITCHES, 1000),
    "cpu-clock": (PerfSwId.CPU_CLOCK, 1000000),
    "cpu-migrations": (PerfSwId.CPU_MIGRATIONS, 1),
    "dummy": (PerfSwId.DUMMY, 1),
    "emulation-faults": (PerfSwId.EMULATION_FAULTS, 1),
    "major-faults": (PerfSwId.PAGE_FAULTS_MAJ, 1),
    "minor-faults": (PerfSwId.PAGE_FAULTS_MIN, 100),
    "page-faults": (PerfSwId.PAGE_FAULTS, 100),
    "task-clock": (PerfSwId.TASK_CLOCK, 1),
}, aliases={"cs": "context-switches", "cpu": "cpu-clock", "faults": "page-faults"})
