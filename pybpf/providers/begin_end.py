"""BEGIN and END: a program run once, in pybpf's own task, when the session starts (BEGIN) and after
everything else is detached (END). The run side runs it with BPF_PROG_TEST_RUN: a raw tracepoint
program with an empty context, so it reads no arguments.

    BEGIN { printf("hello\\n"); }
"""

from __future__ import annotations

from pybpf.providers.base import Context, ProbeGroup, Provider
from pybpf.uapi.bpf import BpfProgType


class RunOnce(Provider):
    context = Context.NONE
    prog_type = BpfProgType.RAW_TRACEPOINT
    section = "raw_tracepoint"
    filtered_by_pid = False

    def __init__(self, name: str, spellings: tuple[str, ...], attach_kind: str):
        self.name, self.spellings, self.attach_kind = name, spellings, attach_kind

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        group.add(self.point())


BEGIN = RunOnce("BEGIN", ("BEGIN", "begin"), "begin")
END = RunOnce("END", ("END", "end"), "end")
