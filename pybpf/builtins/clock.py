"""Clocks: nsecs, elapsed, jiffies."""

from __future__ import annotations

from pybpf.builtins.entry import identifier, typed
from pybpf.checked import UINT
from pybpf.program import START_MAP
from pybpf.uapi.bpf import BpfFunc


def lower_elapsed(g, e):
    """nsecs minus the start time user space wrote in START_MAP before attaching."""
    now = g.helper(BpfFunc.ktime_get_ns)
    result = g.alloca(8, "elapsed")
    g.store64(now, result)
    g.with_array_element(START_MAP, 0, "start",
                         lambda start: g.store64(g.b.sub(now, g.load64(start)), result))
    return g.load64(result)


BUILTINS = (
    identifier("nsecs", typed(UINT), lambda g, e: g.helper(BpfFunc.ktime_get_ns)),
    identifier("elapsed", typed(UINT), lower_elapsed),
    # jiffies_64: timer ticks since boot, from INITIAL_JIFFIES (2^32 - 300 * HZ) on 64-bit kernels.
    identifier("jiffies", typed(UINT), lambda g, e: g.helper(BpfFunc.jiffies64)),
)
