"""Cleanup on every way the real `pybpf` command can end: Ctrl-C, SIGTERM, SIGHUP, exit() in the
program, a broken stdout pipe, an output that cannot be written, and SIGKILL.

Each test reads, while pybpf runs, the kernel objects behind its fds (/proc/PID/fdinfo: prog_id,
map_id, link_id), ends it one way, then checks that every one of those ids is gone from the kernel
(polled up to 2 s: the kernel frees programs and maps after an RCU grace period) and that no tracefs
probe of ours is left. Ids are ours alone, so other people's BPF programs running meanwhile do not
matter. The in-process counterpart (an exception inside the runtime) is tests/runtime/test_session_faults.py.
"""

import os
import select
import signal
import subprocess
import sys
import time

import pytest

PYBPF = [sys.executable, "-m", "pybpf.cli"]
UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"

# The probe fires only for this test process's getppid(), so the test decides when events happen.
PROGRAM = (r'tracepoint:syscalls:sys_enter_getppid /pid == $1/ { @calls = count(); printf("ppid\n"); }'
           r' BEGIN { printf("ready\n"); } END { printf("end\n"); }')

pytestmark = pytest.mark.kernel


def kernel_ids_of(pid: int) -> dict[str, set[int]]:
    """{'prog_id': {...}, 'map_id': {...}, 'link_id': {...}} held through pid's fds."""
    ids: dict[str, set[int]] = {"prog_id": set(), "map_id": set(), "link_id": set()}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        for line in info.splitlines():
            key, _, value = line.partition(":")
            if key in ids:
                ids[key].add(int(value))
    return ids


def alive(kind: str, object_id: int) -> bool:
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.syscall import bpf
    from pybpf.uapi.bpf import BpfCmd, GetIdAttr
    cmd = {"prog_id": BpfCmd.PROG_GET_FD_BY_ID, "map_id": BpfCmd.MAP_GET_FD_BY_ID,
           "link_id": BpfCmd.LINK_GET_FD_BY_ID}[kind]
    try:
        os.close(bpf(cmd, GetIdAttr(start_id=object_id)))
    except BpfError:
        return False
    return True


def assert_all_released(ids: dict[str, set[int]], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = {kind: {i for i in found if alive(kind, i)} for kind, found in ids.items()}
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not any(left.values()), f"still in the kernel after pybpf ended: {left}"
    if os.path.exists(UPROBE_EVENTS):
        with open(UPROBE_EVENTS) as f:
            assert "pybpf" not in f.read()


class Pybpf:
    """The real command, its stdout read line by line with a deadline."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(PYBPF + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while text.encode() + b"\n" not in self.out:
            left = deadline - time.monotonic()
            chunk = os.read(fd, 65536) if left > 0 and select.select([fd], [], [], left)[0] else b""
            if not chunk:
                self.proc.kill()
                _, err = self.proc.communicate()
                raise AssertionError(f"no {text!r} from pybpf: {self.out!r} {err!r}")
            self.out += chunk

    def ids(self) -> dict[str, set[int]]:
        ids = kernel_ids_of(self.proc.pid)
        assert ids["prog_id"] and ids["map_id"], ids
        return ids

    def finish(self, timeout: float = 10.0) -> tuple[str, str, int]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError(f"pybpf did not exit within {timeout} s")
        return (self.out + out).decode(), err.decode(), self.proc.returncode


def started(*extra: str) -> Pybpf:
    p = Pybpf(*extra, "-e", PROGRAM, str(os.getpid()))
    p.wait_for("ready")
    os.getppid()                       # one event, through the attached tracepoint
    p.wait_for("ppid")
    return p


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_runs_end_prints_maps_and_detaches(sig):
    p = started()
    ids = p.ids()
    p.proc.send_signal(sig)
    out, err, status = p.finish()
    assert (status, err) == (0, "")
    assert out.endswith("ppid\nend\n\n\n@calls: 1\n")
    assert_all_released(ids)


def test_exit_in_the_program_detaches():
    p = Pybpf("-e", r'tracepoint:syscalls:sys_enter_getppid /pid == $1/ { printf("bye\n"); exit(); }'
              r' BEGIN { printf("ready\n"); }', str(os.getpid()))
    p.wait_for("ready")
    ids = p.ids()
    os.getppid()
    out, err, status = p.finish()
    assert (status, err) == (0, "") and "bye\n" in out
    assert_all_released(ids)


def test_sigkill_leaves_nothing_since_nothing_is_pinned():
    p = started()
    ids = p.ids()
    p.proc.kill()
    _, _, status = p.finish()
    assert status == -signal.SIGKILL
    assert_all_released(ids)


def test_broken_stdout_pipe_exits_quietly_and_detaches():
    p = started()
    ids = p.ids()
    p.proc.stdout.close()              # the reader goes away, as `| head -1` does
    os.getppid()                       # the next printf meets EPIPE
    start = time.monotonic()
    status = p.proc.wait(timeout=10)
    err = p.proc.stderr.read().decode()
    assert time.monotonic() - start < 2
    assert (status, err) == (1, "")
    assert_all_released(ids)


def test_pipe_into_head_ends_promptly_and_quietly():
    # The shell's version: a busy probe, `head -1` exits after the first line.
    command = " ".join(PYBPF) + """ -e 'tracepoint:raw_syscalls:sys_enter { printf("%d\\n", pid); }' | head -1"""
    start = time.monotonic()
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                          timeout=20)
    assert time.monotonic() - start < 10
    assert done.stdout == "Attaching 1 probe...\n"
    assert done.stderr == "" and done.returncode == 1


def test_unwritable_output_is_one_line_and_releases_everything(tmp_path):
    # /dev/full refuses the first write ("Attaching ..."), when the maps and programs are loaded.
    done = subprocess.run(PYBPF + ["-o", "/dev/full", "-e", "BEGIN { @a = 1; exit(); }"],
                          capture_output=True, text=True, timeout=20)
    assert (done.returncode, done.stderr) == (1, "ERROR: cannot write the output: No space left on device\n")
    missing = subprocess.run(PYBPF + ["-o", str(tmp_path / "no" / "such"), "-e", "BEGIN { exit(); }"],
                             capture_output=True, text=True, timeout=20)
    assert missing.stderr == f"ERROR: {tmp_path / 'no' / 'such'}: No such file or directory\n"
