"""The leak check every kernel test ends with (conftest.py, kernel_objects.py): it still finds a program that nobody
holds and that stays loaded, and it does not blame a test for the program of another process that
is still in its exit (another test run's pybpf, killed while hundreds of perf events were attached:
the kernel closes them for seconds after the process is gone)."""

import ctypes
import os
import signal
import subprocess
import tempfile
import time

import pytest
from e2e_helpers import READY, Running
from kernel_objects import (exits_in_flight, leaked_programs, programs_held_by,
                            pybpf_programs_in_kernel, wait_for_release)

pytestmark = pytest.mark.kernel


def pin(prog_id: int, path: str) -> None:
    """Pin program `prog_id` at `path`, in a bpf file system: loaded until the pin is removed."""
    from pybpf.runtime.loader import prog_fd_by_id
    from pybpf.runtime.syscall import bpf
    from pybpf.uapi.bpf import BpfCmd, ObjPinAttr
    name = ctypes.create_string_buffer(path.encode())
    fd = prog_fd_by_id(prog_id)
    try:
        bpf(BpfCmd.OBJ_PIN, ObjPinAttr(pathname=ctypes.addressof(name), bpf_fd=fd))
    finally:
        os.close(fd)


def test_a_program_nobody_holds_that_stays_loaded_is_a_leak():
    before = pybpf_programs_in_kernel()
    run = Running(["-e", READY + "tracepoint:syscalls:sys_enter_getppid { @ = count(); }"])
    run.wait_for("ready")
    ours = programs_held_by(run.proc.pid)
    assert ours
    bpffs = tempfile.mkdtemp()
    subprocess.run(["mount", "-t", "bpf", "bpf", bpffs], check=True)
    try:
        for prog_id in ours:
            pin(prog_id, os.path.join(bpffs, f"p{prog_id}"))
        assert run.stop()[2] == 0
        assert wait_for_release(before, settle=0.5, cap=1.0) >= ours
    finally:
        subprocess.run(["umount", bpffs], check=True)      # the pins with it
        os.rmdir(bpffs)


def test_a_program_freed_by_an_exit_still_in_flight_is_not_a_leak():
    # 30 tracepoints, each its own perf event: closing them takes the killed process ~1 s
    before = pybpf_programs_in_kernel()
    run = Running(["--no-shared-syscalls", "-e",
                   READY + "t:syscalls:sys_enter_[a-c]* { @[probe] = count(); }"])
    run.wait_for("ready")
    run.proc.send_signal(signal.SIGKILL)        # and not reaped yet: its exit goes on
    deadline = time.monotonic() + 2
    while not (leaked_programs(before) and exits_in_flight()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leaked_programs(before), "the killed process's program was never seen held by no one"
    # a settle time far shorter than the exit: only the exit in flight keeps the check waiting
    assert wait_for_release(before, settle=0.1) == set()
    run.proc.wait(timeout=30)
