"""uprobe:PATH:FUNC[+OFFSET] / uretprobe:PATH:FUNC -> one perf event of the uprobe PMU (it fires in every
process that runs the code, on every CPU); the program is of type KPROBE. Closing the perf event detaches.

    attach(prog_fd, AttachPoint('uprobe', '/lib/x86_64-linux-gnu/libc.so.6:getpid'))
    attach(prog_fd, AttachPoint('uprobe', '/usr/bin/bash:readline+0x4'))

perf_event_open(type = /sys/bus/event_source/devices/uprobe/type, config = the retprobe bit (from
.../format/retprobe) for uretprobe, config1 = pointer to the path, config2 = the FILE offset of the
function (its vaddr through the PT_LOAD segment holding it: pybpf.elfsym), pid -1, cpu 0; with
-p PID, the point's perf_event names the pid, and the event is that process's, on any CPU).
"""

from __future__ import annotations

import errno

from pybpf import elfsym
from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_probe_pmu, pmu_type, required_pmu_type
from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.uapi.perf_event import UPROBE_PMU

RETURN_KIND = "uretprobe"       # the attach kind of return probes


def resolve(target: str) -> tuple[str, int]:
    """'PATH:FUNC+OFFSET' -> (PATH as found, file offset to probe). Raises elfsym.SymbolError."""
    path, func, offset = elfsym.parse_uprobe_target(target)
    path = elfsym.find_binary(path)
    return path, elfsym.uprobe_offset(path, func, offset)


def uprobes_available() -> bool:
    """Whether this kernel has the uprobe PMU (CONFIG_UPROBE_EVENTS)."""
    return pmu_type(UPROBE_PMU) is not None


def attach_at(prog_fd: int, point: AttachPoint, path: str, offset: int, retprobe: bool = False,
              config: int = 0) -> PerfEventAttachment:
    """A uprobe at file `offset` of `path` (usdt: too), in the process the point's perf_event
    names if it does; `config` adds to the PMU's config (a USDT semaphore's ref_ctr_offset)."""
    perf_type = required_pmu_type(
        UPROBE_PMU, f"uprobes are not available in this kernel (no uprobe PMU in "
                    f"/sys/bus/event_source/devices: CONFIG_UPROBE_EVENTS is not set): {point.name} "
                    f"cannot attach")
    pid = point.perf_event.pid if point.perf_event else -1
    try:
        return attach_probe_pmu(prog_fd, UPROBE_PMU, perf_type, retprobe, path, offset,
                                f"{point.name}: the kernel refused a uprobe at file offset "
                                f"{offset:#x} of {path}", config=config, pid=pid)
    except BpfError as e:
        if e.errno == errno.ESRCH:
            raise ProbeUnavailableError("perf_event_open", e.errno,
                                        f"{point.name}: no process with pid {pid}") from None
        raise


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    try:
        path, offset = resolve(point.target)
    except elfsym.SymbolError as e:
        raise ProbeUnavailableError("uprobe", errno.ENOENT, f"{point.name}: {e}") from None
    return attach_at(prog_fd, point, path, offset, point.attach_kind == RETURN_KIND)
