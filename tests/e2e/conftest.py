"""End-to-end tests run the real `pybpf` command. Helpers to start it, wait until it has attached,
stop it with a signal, and a check after every kernel test that nothing of ours stays behind:
every pybpf process we started has exited, and the kernel holds no more pybpf programs (named
p0, p1, ...) than before the test (polled briefly: other people's pybpf runs may come and go)."""

import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))     # e2e_helpers

from e2e_helpers import STARTED, Running  # noqa: E402

OUR_PROG = re.compile(rb"^p\d+$")


def pybpf_programs_in_kernel() -> int:
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import prog_fd_by_id, prog_ids, prog_info
    count = 0
    for prog_id in prog_ids():
        try:
            fd = prog_fd_by_id(prog_id)
        except BpfError:
            continue
        try:
            count += bool(OUR_PROG.match(prog_info(fd).name))
        finally:
            os.close(fd)
    return count


@pytest.fixture
def pybpf_running():
    return Running


@pytest.fixture(autouse=True)
def leaves_nothing_behind(request):
    if not request.node.get_closest_marker("kernel") or os.geteuid() != 0:
        yield
        return
    before = pybpf_programs_in_kernel()
    STARTED.clear()
    yield
    still_running = [p for p in STARTED if p.poll() is None]
    for p in still_running:
        p.kill()
        p.wait(timeout=10)
    assert not still_running, "a pybpf process was left running"
    deadline = time.monotonic() + 3
    while pybpf_programs_in_kernel() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pybpf_programs_in_kernel() <= before, "pybpf programs stayed loaded after the test"
