"""Run the real `pybpf` command: start it, wait until it has attached, stop it with a signal."""

import os
import re
import select
import signal
import subprocess
import sys
import time

PYBPF = [sys.executable, "-m", "pybpf.cli"]
READY = 'BEGIN { printf("ready\\n"); } '     # printed once every probe is attached: fire after it
_NAMED = "import ctypes, sys\nctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"


def unused_pid() -> int:
    """A pid no process has, within what -p takes (bpftrace's bound, 0x400000)."""
    return next(pid for pid in range(0x400000, 1, -1) if not os.path.exists(f"/proc/{pid}"))


def named_child(comm: str, body: str, *args) -> list[str]:
    """The command of a Python child that names itself `comm` (prctl PR_SET_NAME), so that a
    `/comm == "..."/` predicate counts exactly its events, then runs `body` (sys is imported;
    sys.argv[2:] are `args`)."""
    return [sys.executable, "-c", _NAMED + body, comm, *map(str, args)]
STARTED: list[subprocess.Popen] = []     # every process started, for the leak check in conftest


class Running:
    """A pybpf process (or `command`, e.g. a tool): its stdout read (unbuffered) line by line with deadlines."""

    def __init__(self, args, command=PYBPF, **kwargs):
        self.proc = subprocess.Popen(command + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, **kwargs)
        STARTED.append(self.proc)
        self.seen = b""          # everything read so far
        self.pos = 0             # how far wait_for has looked, in whole lines

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Read stdout until a line (after the ones already matched) containing `text`."""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        needle = text.encode()
        while True:
            while b"\n" in self.seen[self.pos:]:
                end = self.seen.index(b"\n", self.pos) + 1
                line, self.pos = self.seen[self.pos:end], end
                if needle in line:
                    return line.decode()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.seen += chunk
        self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        raise AssertionError(f"no {text!r} from pybpf within {timeout}s; stdout "
                             f"{(self.seen + out).decode()!r} stderr {err.decode()!r}")

    def stop(self, sig=signal.SIGINT, timeout: float = 20.0) -> tuple[str, str, int]:
        """Send `sig` (None: just wait for it to exit); -> (all stdout, stderr, exit code)."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"pybpf did not exit within {timeout}s: {out!r} {err!r}")
        return (self.seen + out).decode(), err.decode(), self.proc.returncode


def trace(args, command, *, until: str | None = None, ready: str = "ready", env=None,
          timeout: float = 30.0, **command_kwargs) -> str:
    """Trace one command: start pybpf with `args`, wait for its line with `ready` (READY's, once
    every probe is attached), run `command` to a successful exit, wait for a line with `until`
    (when given: an event that must have come), stop pybpf with SIGINT and check it exited 0.
    -> all pybpf printed."""
    return _trace(args, command, until, ready, env, timeout, command_kwargs)[0]


def trace_line(args, command, until: str, *, ready: str = "ready", env=None,
               timeout: float = 30.0, **command_kwargs) -> str:
    """As trace(), -> the first line with `until` that pybpf printed after `ready`'s."""
    return _trace(args, command, until, ready, env, timeout, command_kwargs)[1]


def _trace(args, command, until, ready, env, timeout, command_kwargs) -> tuple[str, str | None]:
    run = Running(args, env=env)
    run.wait_for(ready)
    subprocess.run(command, timeout=timeout, check=True, **command_kwargs)
    line = run.wait_for(until) if until is not None else None
    out, err, code = run.stop()
    assert code == 0, err
    return out, line


def run_pybpf(args, timeout=30.0, **kwargs) -> subprocess.CompletedProcess:
    """Run pybpf to completion (programs that exit() by themselves, or no-kernel options)."""
    return subprocess.run(PYBPF + list(args), capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def setting_by(how: str, name: str, value: str) -> tuple[dict, str]:
    """(environment, config block) that set bpftrace setting `name` to `value`: by the script's
    config block when `how` is "config", else by the environment variable named `how`."""
    if how == "config":
        return dict(os.environ), f"config = {{ {name} = {value} }} "
    return dict(os.environ, **{how: value}), ""


def bcc_tool(name: str) -> list[str]:
    """The command of BCC's tool `name` (Debian's bpfcc-tools: NAME-bpfcc), or a pytest skip that
    says why it cannot run here: not installed, or it exits as it starts (without this kernel's
    headers its C does not compile). Found by running it, not assumed."""
    import shutil

    import pytest

    exe = shutil.which(f"{name}-bpfcc")
    if exe is None:
        pytest.skip(f"BCC's {name} (Debian's bpfcc-tools) is not installed")
    proc = subprocess.Popen([exe], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    STARTED.append(proc)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:       # still running: it compiled and attached
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        return [exe]
    why = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    pytest.skip(f"BCC's {name} cannot run here: {why}")


NOP, INT3 = 0x90, 0xCC          # a USDT site's instruction, and a uprobe's breakpoint


class App:
    """USDT_APP (or LOADER) running, driven a line at a time: tick() runs its probes once."""

    def __init__(self, *command: str):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def tick(self) -> int:
        """Run work() once; -> the semaphore's value the program saw."""
        self.proc.stdin.write(b"k\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().decode()
        return int(re.fullmatch(r"tick \d+ semaphore (\d+)\n", line)[1])

    def code_byte(self, path: str, file_offset: int) -> int:
        """The byte the process runs at `file_offset` of `path`: 0xcc (int3) where a uprobe is."""
        with open(f"/proc/{self.proc.pid}/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 6 and fields[5] == path and "x" in fields[1]:
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    address = start + file_offset - int(fields[2], 16)
                    if start <= address < end:
                        with open(f"/proc/{self.proc.pid}/mem", "rb") as mem:
                            mem.seek(address)
                            return mem.read(1)[0]
        raise AssertionError(f"{path} offset {file_offset:#x} is not mapped executable")

    def crash(self) -> int:
        self.proc.stdin.write(b"c\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate(timeout=10)
