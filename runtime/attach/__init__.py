"""Attaching programs, one module per probe kind, chosen by AttachPoint.provider.

    attachment = attach(prog_fd, AttachPoint('tracepoint', 'syscalls:sys_enter_openat'), program_spec)
    attachment.close()                 # detaches

Each module has `attach(prog_fd, point, program=None) -> Attachment` (anything with close()); `program`,
the ProgramSpec the fd was loaded from, tells a module that takes two program kinds which one it has
(rawtracepoint: RAW_TRACEPOINT or a BTF-typed TRACING program). A new kind (usdt, software) is a new
module and a line in PROVIDERS. BEGIN and END run once when attached; the
session attaches them at start and at stop.
"""

from __future__ import annotations

import errno
from typing import Protocol

from pybpf.program import AttachPoint, ProgramSpec
from pybpf.runtime.attach import (begin_end, fentry, interval, kprobe, profile, rawtracepoint, tracepoint,
                                  uprobe)
from pybpf.runtime.errors import NotSupportedError

RUN_ONCE_PROVIDERS = ("BEGIN", "END")

PROVIDERS = {
    "tracepoint": tracepoint,
    "rawtracepoint": rawtracepoint,
    "kprobe": kprobe,
    "kretprobe": kprobe,
    "fentry": fentry,
    "fexit": fentry,
    "interval": interval,
    "uprobe": uprobe,
    "uretprobe": uprobe,
    "profile": profile,
    "BEGIN": begin_end,
    "END": begin_end,
}


class Attachment(Protocol):
    def close(self) -> None: ...


def attach(prog_fd: int, point: AttachPoint, program: ProgramSpec | None = None) -> Attachment:
    module = PROVIDERS.get(point.provider)
    if module is None:
        raise NotSupportedError("attach", errno.EOPNOTSUPP,
                                f"{point.name}: probe type {point.provider!r} is not supported by the runtime "
                                f"(supported: {', '.join(sorted(PROVIDERS))})")
    return module.attach(prog_fd, point, program)
