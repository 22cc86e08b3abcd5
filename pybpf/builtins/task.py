"""The current task: pid, tid, uid, gid, comm, cgroup, curtask; and cgroupid(path), the id `cgroup`
reads, of a path."""

from __future__ import annotations

import os

from pybpf import ast, facts
from pybpf import types as T
from pybpf.builtins.entry import function, identifier, typed
from pybpf.checked import UINT
from pybpf.program import START_CPID, START_MAP
from pybpf.ktypes import KernelTypeError
from pybpf.uapi.bpf import BpfFunc


def upper_half(g, value):
    return g.b.lshr(value, g.constant(32))


def lower_half(g, value):
    return g.b.and_(value, g.constant(0xFFFFFFFF))


def lower_cpid(g, e):
    """The -c command's pid, which the session writes before attaching (0 without -c): read from a
    map, not compiled in, so a cached object serves every run."""
    result = g.alloca(8, "cpid")
    g.store64(g.constant(0), result)
    g.with_array_element(START_MAP, START_CPID, "cpid_slot",
                         lambda slot: g.store64(g.load64(slot), result))
    return g.load64(result)


def check_curtask(c, e):
    kt = c.kernel_types(e.span)
    if kt is None:
        return None
    try:
        return kt.curtask_type()
    except KernelTypeError as err:
        c.error(str(err), e.span)
        return None


def check_cgroupid(c, e):
    """cgroupid("/sys/fs/cgroup/...") is resolved when the program compiles, as bpftrace's: a cgroup
    v2 id is the inode number of the cgroup's directory."""
    (path,) = e.args
    if not isinstance(path, ast.String):
        c.error("cgroupid() expects a string literal", path.span)
        return None
    c.set(path, T.StringType(len(path.value) + 1))
    try:
        fact = facts.observe("inode", os.fsdecode(path.value))
    except OSError as err:
        c.error(f"cgroupid: cannot find the cgroup {path.value.decode(errors='replace')}: "
                f"{err.strerror}", path.span)
        return None
    c.result.constants[e] = int(fact[2])
    c.result.depends_on.add(fact)
    return UINT


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
    identifier("cpid", typed(UINT), lower_cpid),
    identifier("curtask", check_curtask, lambda g, e: g.helper(BpfFunc.get_current_task)),
    function("cgroupid", (1, 1), check_cgroupid, lambda g, e: g.constant(g.checked.constants[e])),
)
