"""BEGIN and END: a raw tracepoint program run once with BPF_PROG_TEST_RUN, in the caller's own task
(so pid and comm are the tracer's, as in bpftrace). "Attaching" one runs it; the session decides when.

    attach(prog_fd, AttachPoint('BEGIN'))     # runs the program now
"""

from __future__ import annotations

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import BpfCmd, TestRunAttr


class RanOnce:
    """A program that already ran: nothing stays attached."""

    def __init__(self, retval: int):
        self.retval = retval

    def close(self) -> None:
        pass


def run_once(prog_fd: int) -> int:
    """Run the program once (repeat, data and ctx all zero); returns its return value."""
    attr = TestRunAttr(prog_fd=prog_fd)
    bpf(BpfCmd.PROG_TEST_RUN, attr)
    return attr.retval


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> RanOnce:
    return RanOnce(run_once(prog_fd))
