"""The CPUs: the one a probe runs on, how many there are, their NUMA node."""

from __future__ import annotations

from pybpf.builtins.entry import identifier, typed
from pybpf.checked import UINT
from pybpf.uapi.bpf import BpfFunc

POSSIBLE_CPUS_FILE = "/sys/devices/system/cpu/possible"


def count_cpus(cpu_list: str) -> int:
    """'0-3,6' -> 5: the CPUs in a sysfs CPU list."""
    count = 0
    for part in cpu_list.strip().split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def possible_cpus() -> int:
    """The CPUs the kernel could ever bring online (OSError, ValueError if sysfs does not say)."""
    with open(POSSIBLE_CPUS_FILE) as f:
        return count_cpus(f.read())


def checked_possible_cpus(c, span) -> int | None:
    """possible_cpus() fixed at compile time, as bpftrace's ncpus (the compile cache keys on the
    same list): what ncpus is and a per-CPU value is read over; an error at `span` if unknown."""
    try:
        return possible_cpus()
    except (OSError, ValueError) as err:
        c.error(f"cannot count the CPUs from {POSSIBLE_CPUS_FILE}: {err}", span)
        return None


def check_ncpus(c, e):
    count = checked_possible_cpus(c, e.span)
    if count is None:
        return None
    c.result.constants[e] = count
    return UINT


BUILTINS = (
    identifier("cpu", typed(UINT), lambda g, e: g.helper(BpfFunc.get_smp_processor_id)),
    identifier("ncpus", check_ncpus, lambda g, e: g.constant(g.checked.constants[e])),
    identifier("numaid", typed(UINT), lambda g, e: g.helper(BpfFunc.get_numa_node_id)),
)
