"""Typed errors of the kernel-facing runtime.

    try:
        loaded = load(objspec, compiled)
    except VerifierError as e:
        print(e.summary)          # the verifier's last meaningful lines; e.log holds all of it
    except NotSupportedError:
        ...                       # this kernel lacks the feature: tests skip on it

Every BpfError names the command that failed (`cmd`, e.g. 'PROG_LOAD' or 'perf_event_open') and the errno.
"""

from __future__ import annotations

import errno as _errno
import os

from pybpf.errors import PybpfError


ENOTSUPP = 524      # the kernel-internal "not supported" that bpf(2) and perf_event_open(2) leak to user space


def errno_text(err: int) -> str:
    """'ENOENT (No such file or directory)', also for the kernel-internal codes libc has no name for."""
    if err == ENOTSUPP:
        return "ENOTSUPP (Operation not supported)"
    return f"{_errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


class BpfError(PybpfError):
    def __init__(self, cmd: str, errno: int, detail: str = ""):
        self.cmd = cmd
        self.errno = errno
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.cmd} failed: {errno_text(self.errno)}"
        return f"{text}: {self.detail}" if self.detail else text


class VerifierError(BpfError):
    """BPF_PROG_LOAD rejected by the verifier."""

    def __init__(self, cmd: str, errno: int, log: str, program: str = ""):
        self.log = log
        self.program = program          # the probe(s) it was for, e.g. 'tracepoint:syscalls:sys_enter_openat'
        self.source: tuple[int, int] | None = None   # (line, column) of the failing statement
        super().__init__(cmd, errno, self.summary)

    @property
    def failed_insn(self) -> int | None:
        """The index of the last instruction the verifier reached: where it gave up."""
        found = None
        for line in self.log.splitlines():
            head, sep, _ = line.partition(": (")
            if sep and head.isdigit():
                found = int(head)
        return found

    def __str__(self) -> str:
        text = f"the kernel's verifier rejected the program for {self.program or 'a probe'}:\n{self.summary}"
        if "BPF program is too large" in self.log or "infinite loop" in self.log:
            text += ("\nhint: a loop the verifier could not bound: give `while` a condition on a counter "
                     "with a constant limit, or use unroll(N)")
        return text

    @property
    def summary(self) -> str:
        """The last few lines before the verifier's statistics: where it gave up and why."""
        lines = [ln for ln in self.log.splitlines() if ln.strip()
                 and not ln.startswith(("processed ", "verification time", "stack depth"))]
        return "\n".join(lines[-3:])


class NotSupportedError(BpfError):
    """This kernel (or its configuration) lacks the feature: a map/program type, a tracepoint, fentry."""


class ProbeAttachError(NotSupportedError):
    """A probe that could not be attached while the missing_probes setting is `error`: the kernel's
    reason (`cause`, whose message this is), and as bpftrace prints it, the probe with the setting
    that would skip it."""

    def __init__(self, probe: str, cause: NotSupportedError):
        self.probe = probe
        self.cause = cause
        super().__init__(cause.cmd, cause.errno, cause.detail)

    def __str__(self) -> str:
        return str(self.cause)

    def render(self) -> str:
        return (f"ERROR: {self.cause}\nERROR: Unable to attach probe: {self.probe}. If this is expected, "
                f"set the 'missing_probes' config variable to 'warn'.")


class BpfPermissionError(BpfError):
    """EPERM/EACCES without the privileges the command needs."""

    def render(self) -> str:
        return (f"ERROR: permission denied: pybpf needs root (or CAP_BPF and CAP_PERFMON) to load "
                f"BPF programs ({self.cmd}: {os.strerror(self.errno)})")

