"""Many uprobes of one binary through one link: BPF_LINK_CREATE with BPF_TRACE_UPROBE_MULTI (Linux
6.6), what a wildcard such as `uprobe:libc:*` attaches with when the kernel has it (the program is
loaded with that expected attach type: pybpf.resources plans it). One syscall registers every
uprobe, and closing the link removes them all, where a perf event per function costs a syscall
to attach and ~100-400 ms each to detach here.

    link = attach_points(prog_fd, program.attach_points)      # points: uprobe_multi / uretprobe_multi
    link.close()                                               # detaches every one

Each point's bpf cookie (its probe id, when the block reads `probe`) goes with its offset.

The kernel registers a link's uprobes in order and refuses the whole link when it cannot probe
one function's first instruction (ENOTSUPP: libc's pthread_spin_lock here). The points are then
split in halves, each attached as a link of its own, down to the single functions it refuses,
which are left out with a warning (`skipped`): a wildcard over a library attaches what it can.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from pybpf import elfsym
from pybpf.program import AttachPoint
from pybpf.runtime.attach.link import LinkAttachment
from pybpf.runtime.attach.uprobe import resolve
from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import ProbeUnavailableError, load_program
from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import (BPF_F_UPROBE_MULTI_RETURN, RETURN_ZERO, BpfAttachType, BpfCmd, BpfProgType,
                            LinkCreateUprobeMultiAttr)

KINDS = ("uprobe_multi", "uretprobe_multi")     # the attach kinds of points attached this way
RETURN_KIND = "uretprobe_multi"
ENOTSUPP = 524                                  # the kernel's: the instruction cannot be probed


def _u64s(values: list[int]) -> ctypes.Array:
    return (ctypes.c_uint64 * len(values))(*values)


def _link_create(prog_fd: int, path: str, offsets: list[int], cookies: list[int],
                 retprobe: bool, pid: int) -> int:
    path_buf = ctypes.create_string_buffer(path.encode())       # alive through the call
    offsets_buf, cookies_buf = _u64s(offsets), _u64s(cookies)
    attr = LinkCreateUprobeMultiAttr(
        prog_fd=prog_fd, attach_type=BpfAttachType.TRACE_UPROBE_MULTI,
        path=ctypes.addressof(path_buf), offsets=ctypes.addressof(offsets_buf),
        cookies=ctypes.addressof(cookies_buf) if any(cookies) else 0, cnt=len(offsets),
        uprobe_flags=BPF_F_UPROBE_MULTI_RETURN if retprobe else 0, pid=max(pid, 0))
    return bpf(BpfCmd.LINK_CREATE, attr)


class MultiLinkAttachment:
    """The links of one program's uprobes (one, or a few when some functions were refused), and
    the warnings of those left out."""

    def __init__(self, links: list[LinkAttachment], skipped: list[AttachPoint]):
        self.links = links
        self.warnings = tuple(f"WARNING: {point.name}: the kernel cannot probe the instruction "
                              "there: skipped" for point in skipped)

    def close(self) -> None:
        for link in self.links:
            link.close()


def attach_points(prog_fd: int, points: tuple[AttachPoint, ...]) -> MultiLinkAttachment:
    """Links for the points (one binary, one process or all: the plan groups them so)."""
    try:
        offsets = [resolve(point.target)[1] for point in points]
    except elfsym.SymbolError as e:
        raise ProbeUnavailableError("uprobe", errno.ENOENT, f"{points[0].name}: {e}") from None
    path = resolve(points[0].target)[0]
    event = points[0].perf_event
    pid = event.pid if event else -1
    links: list[LinkAttachment] = []
    skipped: list[AttachPoint] = []

    def attach_range(lo: int, hi: int) -> None:
        try:
            links.append(LinkAttachment(_link_create(
                prog_fd, path, offsets[lo:hi], [point.cookie for point in points[lo:hi]],
                points[0].attach_kind == RETURN_KIND, pid)))
        except BpfError as e:
            if e.errno == ENOTSUPP and hi - lo > 1:
                attach_range(lo, (lo + hi) // 2)
                attach_range((lo + hi) // 2, hi)
            elif e.errno == ENOTSUPP and len(points) > 1:
                skipped.append(points[lo])
            elif e.errno == ENOTSUPP:
                raise ProbeUnavailableError(e.cmd, e.errno, f"{points[lo].name}: the kernel "
                                            "cannot probe the instruction there") from None
            elif e.errno == errno.ESRCH:
                raise ProbeUnavailableError(e.cmd, e.errno, f"{points[0].name}: no process with "
                                            f"pid {pid}") from None
            else:
                raise

    try:
        attach_range(0, len(points))
    except BaseException:
        for link in links:
            link.close()
        raise
    if len(skipped) == len(points):
        raise ProbeUnavailableError("uprobe_multi", ENOTSUPP, f"{points[0].name} and the rest: "
                                    "the kernel cannot probe the instruction at any of them")
    return MultiLinkAttachment(links, skipped)


@functools.cache
def uprobe_multi_available() -> bool:
    """Whether this kernel attaches uprobe_multi links: a program loaded for them is given a
    path that does not exist, which a kernel that has them reports (ENOENT) and one that does
    not refuses as an unknown attach type (EINVAL). Nothing is attached either way."""
    try:
        prog_fd = load_program("pybpf_upmulti", BpfProgType.KPROBE, RETURN_ZERO, "GPL",
                               expected_attach_type=BpfAttachType.TRACE_UPROBE_MULTI)
    except BpfError:
        return False
    try:
        os.close(_link_create(prog_fd, "/nonexistent/pybpf-uprobe-multi-check", [0], [0],
                              False, -1))
        return True                      # not expected: a path that exists after all
    except BpfError as e:
        return e.errno == errno.ENOENT
    finally:
        os.close(prog_fd)
