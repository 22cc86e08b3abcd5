"""The current task: pid, tid, uid, gid, comm, cgroup, curtask."""

from __future__ import annotations

from pybpf import types as T
from pybpf.builtins.entry import identifier, typed
from pybpf.checked import UINT
from pybpf.ktypes import KernelTypeError
from pybpf.uapi.bpf import BpfFunc


def upper_half(g, value):
    return g.b.lshr(value, g.constant(32))


def lower_half(g, value):
    return g.b.and_(value, g.constant(0xFFFFFFFF))


def check_curtask(c, e):
    kt = c.kernel_types(e.span)
    if kt is None:
        return None
    try:
        return kt.curtask_type()
    except KernelTypeError as err:
        c.error(str(err), e.span)
        return None


def lower_comm(g, e):
    buf = g.alloca(T.COMM_SIZE, "comm")
    g.helper(BpfFunc.get_current_comm, buf, g.constant(T.COMM_SIZE))
    return buf


BUILTINS = (
    # bpf_get_current_pid_tgid: tgid << 32 | pid, in the kernel's words (pid is the thread).
    identifier("pid", typed(UINT),
               lambda g, e: upper_half(g, g.helper(BpfFunc.get_current_pid_tgid))),
    identifier("tid", typed(UINT),
               lambda g, e: lower_half(g, g.helper(BpfFunc.get_current_pid_tgid))),
    identifier("uid", typed(UINT),
               lambda g, e: lower_half(g, g.helper(BpfFunc.get_current_uid_gid))),
    identifier("gid", typed(UINT),
               lambda g, e: upper_half(g, g.helper(BpfFunc.get_current_uid_gid))),
    identifier("comm", typed(T.StringType(T.COMM_SIZE)), lower_comm),
    identifier("cgroup", typed(UINT), lambda g, e: g.helper(BpfFunc.get_current_cgroup_id)),
    identifier("curtask", check_curtask, lambda g, e: g.helper(BpfFunc.get_current_task)),
)
