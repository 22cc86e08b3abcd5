"""bpf(2), perf_event_open(2) and ioctl(2) through ctypes, raising typed errors.

    fd = bpf(BpfCmd.MAP_CREATE, MapCreateAttr(map_type=1, key_size=8, value_size=8, max_entries=64))
    fd = perf_event_open(PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id), pid=-1, cpu=0)
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)

The attr structures are mutated in place by the kernel (counts, out tokens, retval).
"""

from __future__ import annotations

import ctypes
import errno
import os

from pybpf.runtime.errors import ENOTSUPP, BpfError, BpfPermissionError, NotSupportedError
from pybpf.uapi.bpf import BpfCmd
from pybpf.uapi.perf_event import PERF_FLAG_FD_CLOEXEC, PerfEventAttr

# x86-64 syscall numbers.
SYS_BPF = 321
SYS_PERF_EVENT_OPEN = 298

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)


CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39

# No file descriptor left for the new object (the process's limit, or the system's).
OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


def effective_capabilities(status: str = "/proc/self/status") -> int | None:
    """The CapEff mask of this process; None when /proc does not say."""
    try:
        with open(status) as f:
            return int(next(ln for ln in f if ln.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return None


def has_bpf_capability() -> bool:
    """CAP_BPF or CAP_SYS_ADMIN in the effective set: what loading needs (root without them cannot)."""
    caps = effective_capabilities()
    if caps is None:
        return os.geteuid() == 0
    return bool(caps & (1 << CAP_BPF | 1 << CAP_SYS_ADMIN))


def has_tracing_capabilities(status: str = "/proc/self/status") -> bool:
    """What loading and attaching tracing programs needs: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON."""
    caps = effective_capabilities(status)
    if caps is None:
        return os.geteuid() == 0
    return bool(caps & 1 << CAP_SYS_ADMIN) or caps & (1 << CAP_BPF | 1 << CAP_PERFMON) == \
        1 << CAP_BPF | 1 << CAP_PERFMON


def error_for(cmd: str, err: int, detail: str = "") -> BpfError:
    """The typed error of a failed command. EPERM with the capabilities means a policy (lockdown, fentry
    here) rather than missing privileges, so it counts as not supported."""
    if err in (errno.EPERM, errno.EACCES) and not has_bpf_capability():
        return BpfPermissionError(cmd, err, detail or "needs root (CAP_BPF and CAP_PERFMON)")
    if err in (errno.EPERM, errno.EOPNOTSUPP, ENOTSUPP, errno.ENOSYS):
        return NotSupportedError(cmd, err, detail)
    if err in OUT_OF_FDS and not detail:
        detail = ("every map, program and attach point holds a file descriptor: raise the limit "
                  "(ulimit -n)" if err == errno.EMFILE else "the system's file table is full")
    return BpfError(cmd, err, detail)


def bpf(cmd: BpfCmd, attr: ctypes.Structure) -> int:
    ret = _libc.syscall(SYS_BPF, ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if ret < 0:
        raise error_for(cmd.name, ctypes.get_errno())
    return ret


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1) -> int:
    ret = _libc.syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), ctypes.c_int(pid), ctypes.c_int(cpu),
                        ctypes.c_int(group_fd), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC))
    if ret < 0:
        raise error_for("perf_event_open", ctypes.get_errno())
    return ret


def ioctl(fd: int, request: int, arg: int, what: str) -> None:
    if _libc.ioctl(fd, request, arg) < 0:
        raise error_for(what, ctypes.get_errno())
