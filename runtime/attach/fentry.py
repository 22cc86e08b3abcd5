"""fentry:FUNC / fexit:FUNC (also kfunc:/kretfunc:) -> a TRACING program (expected_attach_type
TRACE_FENTRY/TRACE_FEXIT, attach_btf_id = the FUNC's vmlinux BTF id, both given at BPF_PROG_LOAD)
attached with BPF_RAW_TRACEPOINT_OPEN and no name; the link fd is the attachment.

    attach(prog_fd, AttachPoint('fentry', 'vfs_read'), program)

On this kernel the load itself is refused (EPERM, lockdown): the loader raises ProbeUnavailableError
before anything gets here.
"""

from __future__ import annotations

import functools
import os

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.link import LinkAttachment, raw_tracepoint_open
from pybpf.runtime.errors import BpfError, NotSupportedError
from pybpf.runtime.loader import load_program
from pybpf.uapi.bpf import RETURN_ZERO, BpfAttachType, BpfProgType


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> LinkAttachment:
    if program is not None and program.prog_type != BpfProgType.TRACING:
        raise ValueError(f"{point.name}: an fentry/fexit program must be of type TRACING, "
                         f"not {program.prog_type}")
    try:
        return LinkAttachment(raw_tracepoint_open(prog_fd, None))
    except NotSupportedError as e:
        raise NotSupportedError(e.cmd, e.errno, f"{point.name}: the kernel refused to attach the "
                                f"fentry/fexit program") from None


@functools.cache
def fentry_available(func_btf_id: int, attach_type: int = BpfAttachType.TRACE_FENTRY) -> bool:
    """Whether this kernel loads an fentry/fexit program on the vmlinux FUNC func_btf_id: a trivial
    program is loaded and closed at once (~0.1 ms). For the compiler's choice between kprobe and
    fentry; False here (EPERM, lockdown)."""
    try:
        os.close(load_program("pybpf_fentry_probe", BpfProgType.TRACING, RETURN_ZERO, "GPL", "",
                              attach_type, func_btf_id))
    except BpfError:
        return False
    return True
