"""Clocks: nsecs and nsecs(CLOCK), elapsed, jiffies."""

from __future__ import annotations

from pybpf import ast
from pybpf.builtins.entry import function, identifier, typed
from pybpf.checked import UINT
from pybpf.program import START_MAP, START_NSECS
from pybpf.uapi.bpf import BpfFunc


def lower_elapsed(g, e):
    """nsecs minus the start time user space wrote in START_MAP before attaching."""
    now = g.helper(BpfFunc.ktime_get_ns)
    result = g.alloca(8, "elapsed")
    g.store64(now, result)
    g.with_array_element(START_MAP, START_NSECS, "start",
                         lambda start: g.store64(g.b.sub(now, g.load64(start)), result))
    return g.load64(result)


# nsecs(CLOCK): the kernel clock each name reads. bpftrace's sw_tai estimates TAI from boot time
# where the kernel lacks bpf_ktime_get_tai_ns (before 5.19); pybpf reads TAI itself.
CLOCKS = {
    "monotonic": BpfFunc.ktime_get_ns,
    "boot": BpfFunc.ktime_get_boot_ns,
    "tai": BpfFunc.ktime_get_tai_ns,
    "sw_tai": BpfFunc.ktime_get_tai_ns,
}
DEFAULT_CLOCK = "boot"      # bpftrace 0.26's nsecs; 0.17's was monotonic


def check_nsecs(c, e):
    if e.args and not (isinstance(e.args[0], ast.Builtin) and e.args[0].name in CLOCKS):
        c.error(f"nsecs() expects one of {', '.join(CLOCKS)}", e.args[0].span)
        return None
    return UINT


def lower_nsecs(g, e):
    clock = e.args[0].name if getattr(e, "args", None) else DEFAULT_CLOCK
    return g.helper(CLOCKS[clock])


BUILTINS = (
    identifier("nsecs", typed(UINT), lower_nsecs),
    function("nsecs", (0, 1), check_nsecs, lower_nsecs),
    identifier("elapsed", typed(UINT), lower_elapsed),
    # jiffies_64: timer ticks since boot, from INITIAL_JIFFIES (2^32 - 300 * HZ) on 64-bit kernels.
    identifier("jiffies", typed(UINT), lambda g, e: g.helper(BpfFunc.jiffies64)),
)
