"""The CPUs: the one a probe runs on, how many there are, their NUMA node."""

from __future__ import annotations

from pybpf import cpus
from pybpf.builtins.entry import identifier, typed
from pybpf.checked import UINT
from pybpf.uapi.bpf import BpfFunc

def checked_cpus(c, span, count) -> int | None:
    """count() of the possible CPUs (pybpf.cpus), fixed at compile time (the compile cache keys
    on the same list); an error at `span` if sysfs does not say."""
    try:
        return count()
    except (OSError, ValueError) as err:
        c.error(f"cannot count the CPUs from {cpus.POSSIBLE_CPUS_FILE}: {err}", span)
        return None


def check_ncpus(c, e):
    """ncpus is bpftrace's: how many CPUs the kernel could ever bring online."""
    count = checked_cpus(c, e.span, lambda: len(cpus.possible_cpu_ids()))
    if count is None:
        return None
    c.result.constants[e] = count
    return UINT


BUILTINS = (
    identifier("cpu", typed(UINT), lambda g, e: g.helper(BpfFunc.get_smp_processor_id)),
    identifier("ncpus", check_ncpus, lambda g, e: g.constant(g.checked.constants[e])),
    identifier("numaid", typed(UINT), lambda g, e: g.helper(BpfFunc.get_numa_node_id)),
)
