"""Attachments that are one bpf link fd: BPF_RAW_TRACEPOINT_OPEN for raw tracepoints and for TRACING
programs (BTF tracepoints, fentry/fexit), whose target came with BPF_PROG_LOAD; BPF_LINK_CREATE for
a program on a perf event with a bpf cookie.

    attachment = LinkAttachment(raw_tracepoint_open(prog_fd, "sched_switch"))   # RAW_TRACEPOINT program
    attachment = LinkAttachment(raw_tracepoint_open(prog_fd, None))             # TRACING program
    attachment.close()                                                           # detaches
    link_fd = perf_event_link(prog_fd, perf_fd, cookie=7)     # bpf_get_attach_cookie() says 7

A cookie lets one program serve many attach points and still tell them apart (the value of `probe`).
"""

from __future__ import annotations

import ctypes
import functools
import os

from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import load_program
from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import (BPF_CALL, BPF_JMP, RETURN_ZERO, BpfAttachType, BpfCmd, BpfFunc, LinkCreateAttr,
                            RawTracepointOpenAttr, bpf_insn)


class LinkAttachment:
    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def raw_tracepoint_open(prog_fd: int, name: str | None, cookie: int = 0) -> int:
    """The link fd of prog_fd attached to raw tracepoint `name`, or, with name None, to the BTF target
    (attach_btf_id) a TRACING program was loaded with. A cookie other than 0 needs Linux 6.10."""
    buf = ctypes.create_string_buffer(name.encode()) if name is not None else None
    attr = RawTracepointOpenAttr(name=ctypes.addressof(buf) if buf is not None else 0, prog_fd=prog_fd,
                                 cookie=cookie)
    return bpf(BpfCmd.RAW_TRACEPOINT_OPEN, attr)


def perf_event_link(prog_fd: int, perf_fd: int, cookie: int) -> int:
    """The link fd of prog_fd attached to the perf event perf_fd with a bpf cookie (Linux 5.15): what
    PERF_EVENT_IOC_SET_BPF does, plus the cookie. The link holds the event: close it first."""
    return bpf(BpfCmd.LINK_CREATE, LinkCreateAttr(prog_fd=prog_fd, target_fd=perf_fd,
                                                  attach_type=BpfAttachType.PERF_EVENT,
                                                  bpf_cookie=cookie))


def call_helper_program(func: int) -> bytes:
    """call func; r0 = 0; exit: a program that asks the verifier whether it takes the helper."""
    return bpf_insn(BPF_JMP | BPF_CALL, imm=func) + RETURN_ZERO


@functools.cache
def attach_cookies_available(prog_type: int) -> bool:
    """Whether programs of prog_type may call bpf_get_attach_cookie (tracepoints since 5.15, raw
    tracepoints since 6.10, with the cookie in BPF_RAW_TRACEPOINT_OPEN): a program calling it is
    loaded and closed at once (~0.1 ms)."""
    try:
        os.close(load_program("pybpf_cookie", prog_type, call_helper_program(BpfFunc.get_attach_cookie),
                              "GPL"))
    except BpfError:
        return False
    return True
