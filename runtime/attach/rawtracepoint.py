"""rawtracepoint:NAME (also MODULE:NAME) -> one bpf link from BPF_RAW_TRACEPOINT_OPEN, firing on every
CPU; closing it detaches.

    attach(prog_fd, AttachPoint('rawtracepoint', 'sched_switch'), program)

Two program kinds attach here, told apart by the BpfProgramSpec's prog type:
- RAW_TRACEPOINT (17): untyped u64 args; the tracepoint is named at attach time.
- TRACING (26) with expected_attach_type TRACE_RAW_TP and attach_btf_id = the `btf_trace_NAME` typedef
  (a BTF tracepoint: typed args the verifier knows): the target came with BPF_PROG_LOAD, so the open
  passes no name.

A tracepoint:CATEGORY:NAME point whose program does not read the record attaches here too, to raw
tracepoint NAME (pybpf.resources), with its cookie when the program is shared.
"""

from __future__ import annotations

import errno

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.link import LinkAttachment, raw_tracepoint_open
from pybpf.runtime.errors import BpfError, NotSupportedError
from pybpf.uapi.bpf import BpfProgType


def tracepoint_name(target: str) -> str:
    """'sched_switch' of 'sched_switch' or 'MODULE:sched_switch'."""
    return target.rsplit(":", 1)[-1]


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> LinkAttachment:
    name = tracepoint_name(point.target)
    btf_typed = program is not None and program.prog_type == BpfProgType.TRACING
    try:
        return LinkAttachment(raw_tracepoint_open(prog_fd, None if btf_typed else name, point.cookie))
    except BpfError as e:
        if e.errno == errno.ENOENT:
            raise NotSupportedError("RAW_TRACEPOINT_OPEN", e.errno,
                                    f"this kernel has no raw tracepoint {name!r}") from None
        raise
