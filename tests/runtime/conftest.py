"""Every kernel test must release what it loaded: checked after each one, in this process (fds and
mappings of BPF objects and perf events) and in the kernel (programs named like our test programs).
Test programs live in sections whose last part starts with `rt_`, which becomes their kernel name."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))     # bpfobj

TEST_PROG_PREFIX = b"rt_"


def held_kernel_objects() -> list[str]:
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:      # the fd of the listdir itself
            continue
        if target.startswith(("anon_inode:bpf", "anon_inode:[perf_event]", "anon_inode:[eventpoll]")):
            held.append(target)
    with open("/proc/self/maps") as f:
        held += [line.split(maxsplit=5)[-1].strip() for line in f if "bpf" in line]
    return sorted(held)


def our_programs_in_kernel() -> int:
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import prog_fd_by_id, prog_ids, prog_info
    count = 0
    for prog_id in prog_ids():
        try:
            fd = prog_fd_by_id(prog_id)
        except BpfError:               # unloaded meanwhile
            continue
        try:
            count += prog_info(fd).name.startswith(TEST_PROG_PREFIX)
        finally:
            os.close(fd)
    return count


@pytest.fixture(autouse=True)
def releases_everything(request):
    if not request.node.get_closest_marker("kernel") or os.geteuid() != 0:
        yield
        return
    before, programs_before = held_kernel_objects(), our_programs_in_kernel()
    yield
    assert held_kernel_objects() == before, "the test left BPF or perf fds or mappings open"
    # The kernel frees a program after an RCU grace period once its last fd or link is closed (a raw
    # tracepoint link's release is deferred): poll, as tests/e2e/test_cleanup.py does.
    deadline = time.monotonic() + 2
    while our_programs_in_kernel() != programs_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert our_programs_in_kernel() == programs_before, "the test left programs loaded"
