"""End-to-end tests run the real `pybpf` command. Helpers to start it, wait until it has attached,
stop it with a signal, and a check after every kernel test that nothing of ours stays behind:
every pybpf process we started has exited, and no pybpf program (named p0, p1, ...) loaded during
the test is still in the kernel unless a live process holds it (other people's pybpf runs come
and go meanwhile)."""

import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))     # e2e_helpers

from e2e_helpers import STARTED, App  # noqa: E402

OUR_PROG = re.compile(rb"^p\d+$")


def pybpf_programs_in_kernel() -> set[int]:
    """Ids of the loaded programs named like pybpf's."""
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import prog_fd_by_id, prog_ids, prog_info
    ids = set()
    for prog_id in prog_ids():
        try:
            fd = prog_fd_by_id(prog_id)
        except BpfError:
            continue
        try:
            if OUR_PROG.match(prog_info(fd).name):
                ids.add(prog_id)
        finally:
            os.close(fd)
    return ids


def programs_held_by_processes() -> set[int]:
    """Ids of the programs some live process holds an fd of (other people's pybpf runs)."""
    held = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("prog_id:"):
                            held.add(int(line.split()[1]))
        except OSError:            # gone meanwhile, or not ours to read
            continue
    return held


def leaked_programs(before: set[int]) -> set[int]:
    """Programs loaded since `before` that no process holds: attached or pinned, nobody's."""
    new = pybpf_programs_in_kernel() - before
    return new - programs_held_by_processes() if new else set()


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
    deadline = time.monotonic() + 5          # the kernel frees programs after an RCU grace period
    while leaked_programs(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leaked_programs(before), "pybpf programs stayed loaded after the test"


@pytest.fixture
def app(usdt_app):
    """app(*command) -> an App running USDT_APP (or the command), closed after the test."""
    apps = []

    def start(*command: str) -> App:
        apps.append(App(*(command or (usdt_app,))))
        return apps[-1]
    yield start
    for a in apps:
        a.close()
