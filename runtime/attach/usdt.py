"""usdt:PATH:PROVIDER:NAME -> a uprobe at one site of the probe, resolved by the compiler
(pybpf.providers.usdt): the point's perf_event holds the site's file offset (config2), its
semaphore's file offset as the uprobe's ref_ctr_offset (config bits 32..63; 0: none) and the
process it is limited to (pid, -1: every process). The kernel keeps the semaphore raised while
the perf event is open; closing it detaches and lowers it.

    attach(prog_fd, AttachPoint('usdt', '/usr/bin/prog:myapp:start', attach_kind='usdt',
                                perf_event=PerfEvent(0, 0x3020 << 32, 0, config2=0x1139)))
"""

from __future__ import annotations

import errno
import os

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment
from pybpf.runtime.attach.uprobe import attach_at
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.uapi.perf_event import UPROBE_REF_CTR_FORMAT_FILE


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    event = point.perf_event
    if event.config and not os.path.exists(UPROBE_REF_CTR_FORMAT_FILE):
        raise ProbeUnavailableError("perf_event_open", errno.EOPNOTSUPP,
                                    f"{point.name}: this kernel's uprobes cannot count a USDT "
                                    "semaphore (no ref_ctr_offset in the uprobe PMU's format)")
    return attach_at(prog_fd, point, point.target.rsplit(":", 2)[0], event.config2, config=event.config)
