"""kprobe:FUNC[+OFFSET] / kretprobe:FUNC -> one perf event of the kprobe PMU (it fires on every CPU);
the program is of type KPROBE. Closing the perf event detaches.

    attach(prog_fd, AttachPoint('kprobe', 'vfs_read+0x10'))

perf_event_open(type = /sys/bus/event_source/devices/kprobe/type, config = the retprobe bit (from
.../format/retprobe, 'config:0') for kretprobe, config1 = pointer to the function name, config2 = the
offset). A kernel without CONFIG_KPROBES has no kprobe PMU: ProbeUnavailableError, one line.
"""

from __future__ import annotations

from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach.perf_event import PerfEventAttachment, attach_probe_pmu, pmu_type, required_pmu_type
from pybpf.uapi.perf_event import KPROBE_PMU

RETURN_KIND = "kretprobe"       # the attach kind of return probes


def parse_target(target: str) -> tuple[str, int]:
    """'vfs_read+0x10' -> ('vfs_read', 16); a MODULE: prefix is dropped (the kprobe PMU takes the bare
    symbol)."""
    func, _, offset = target.rsplit(":", 1)[-1].partition("+")
    try:
        return func, int(offset, 0) if offset else 0
    except ValueError:
        raise ValueError(f"bad kprobe offset in {target!r}: {offset!r}") from None


def kprobes_available() -> bool:
    """Whether this kernel has the kprobe PMU (CONFIG_KPROBES): for the compiler's kprobe/fentry choice."""
    return pmu_type(KPROBE_PMU) is not None


def attach(prog_fd: int, point: AttachPoint, program: BpfProgramSpec | None = None) -> PerfEventAttachment:
    func, offset = parse_target(point.target)
    perf_type = required_pmu_type(
        KPROBE_PMU, f"kprobes are not available in this kernel (CONFIG_KPROBES is not set): "
                    f"{point.name} cannot attach")
    return attach_probe_pmu(prog_fd, KPROBE_PMU, perf_type, point.attach_kind == RETURN_KIND, func,
                            offset, f"{point.name}: no such kernel function to probe (or not "
                            f"probeable at offset {offset})")
