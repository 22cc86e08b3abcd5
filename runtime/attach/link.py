"""Attachments that are one bpf link fd: BPF_RAW_TRACEPOINT_OPEN for raw tracepoints and for TRACING
programs (BTF tracepoints, fentry/fexit), whose target came with BPF_PROG_LOAD.

    attachment = LinkAttachment(raw_tracepoint_open(prog_fd, "sched_switch"))   # RAW_TRACEPOINT program
    attachment = LinkAttachment(raw_tracepoint_open(prog_fd, None))             # TRACING program
    attachment.close()                                                           # detaches
"""

from __future__ import annotations

import ctypes
import os

from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import BpfCmd, RawTracepointOpenAttr


class LinkAttachment:
    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def raw_tracepoint_open(prog_fd: int, name: str | None) -> int:
    """The link fd of prog_fd attached to raw tracepoint `name`, or, with name None, to the BTF target
    (attach_btf_id) a TRACING program was loaded with."""
    buf = ctypes.create_string_buffer(name.encode()) if name is not None else None
    attr = RawTracepointOpenAttr(name=ctypes.addressof(buf) if buf is not None else 0, prog_fd=prog_fd)
    return bpf(BpfCmd.RAW_TRACEPOINT_OPEN, attr)
