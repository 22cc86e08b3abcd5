"""Seconds from a stop signal to pybpf's exit, with the signal sent in each phase of a run.

    python3 -m benchmarks.stop_signals                       # SIGINT, 360 tracepoints, 3 runs
    python3 -m benchmarks.stop_signals --signal SIGTERM --repeat 1
    python3 -m benchmarks.stop_signals --program all --phases llvm load attach

The program (--program syscalls): one probe on every `syscalls:sys_enter_*` tracepoint (360 on the
reference machine), each its own program (--no-shared-syscalls), compiled without the cache, so
that each phase lasts long enough to be caught; --program all is `tracepoint:*:*`. The phase is seen from outside, through /proc: `front end` (the LLVM child
is waiting for the IR), `llvm` (the IR was sent: the parent closed the child's stdin), `load` (BPF
programs appear, no perf event yet), `attach` (perf events appearing), `run` (all attached), `print`
(a second signal while a 100,000-key map is being printed, after a first one ended the run).
Exit is the status pybpf ends with (0: the run ended as with exit(); 1: interrupted).

After an interrupted load the exit is immediate; after an interrupted attach (and at the end of a
run) it waits for the kernel to detach what was attached: closing a tracepoint's last perf event
waits for RCU grace periods under a kernel mutex, about 40 ms per tracepoint here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

from benchmarks.common import benchmark_main

PYBPF = [sys.executable, "-m", "pybpf.cli"]
# name -> (arguments, environment)
PROGRAMS = {
    "syscalls": (["--no-cache", "--no-shared-syscalls", "--no-grouped-tracepoints", "-e",
                  'tracepoint:syscalls:sys_enter_* { @[probe] = count(); } END { printf("end\\n"); }'], {}),
    # every tracepoint (1587 programs, 2305 attach points here), the limit raised for it
    "all": (["--no-cache", "-e", "tracepoint:*:* { @[probe] = count(); }"],
            {"BPFTRACE_MAX_PROBES": "100000"}),
}
PHASES = ("front end", "llvm", "load", "attach", "run", "print")
PRINT_KEYS = 100_000
SYS_lseek = 8


def wide_count() -> int:
    return sum(n.startswith("sys_enter_") for n in os.listdir("/sys/kernel/tracing/events/syscalls"))


def held(pid: int) -> dict[str, int]:
    """How many BPF programs and perf events pid holds (none once it is gone)."""
    targets = _fd_targets(pid) or []
    return {"progs": targets.count("anon_inode:bpf-prog"), "perf": targets.count("anon_inode:[perf_event]")}


def _fd_targets(pid: int) -> list[str] | None:
    """What pid's fds refer to (one closed meanwhile is left out); None once pid is gone."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    targets = []
    for fd in fds:
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return targets


def children(pid: int) -> list[int]:
    """The children of every thread of pid (pybpf compiles, and starts LLVM, in a thread of its own)."""
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def _llvm_busy(pid: int) -> bool | None:
    """None: no LLVM child; False: it waits for the IR; True: the IR was sent (its stdin is closed
    on the parent's side)."""
    for child in children(pid):
        try:
            stdin = os.readlink(f"/proc/{child}/fd/0")
        except OSError:
            continue
        parent = _fd_targets(pid)
        return None if parent is None else stdin not in parent
    return None


class MissedPhase(Exception):
    """pybpf went through the phase between two looks (a busy machine): start it again."""


def wait_for_phase(proc: subprocess.Popen, phase: str, timeout: float = 120.0) -> dict:
    """Poll /proc until proc is in `phase` (see the module doc); -> what it held then, and the LLVM
    child's pid (compile phases). Attaching: perf events still appearing; running: their number
    steady for half a second."""
    start = changed = time.monotonic()
    perf = 0
    while time.monotonic() - start < timeout and proc.poll() is None:
        llvm = _llvm_busy(proc.pid) if phase in ("front end", "llvm") else None
        now = held(proc.pid)
        if now["perf"] != perf:
            perf, changed = now["perf"], time.monotonic()
        steady = time.monotonic() - changed
        if ((phase == "front end" and llvm is False and time.monotonic() - start > 0.3)
                or (phase == "llvm" and llvm is True)
                or (phase == "load" and now["progs"] >= 10 and not perf)
                or (phase == "attach" and perf >= 10 and steady < 0.02)
                or (phase == "run" and perf and steady > 0.5)):
            return dict(now, llvm_child=children(proc.pid)[0] if llvm is not None else None)
        if ((phase in ("front end", "llvm") and now["progs"]) or (phase == "load" and perf)
                or (phase == "attach" and perf and steady > 0.5)):
            raise MissedPhase(phase)
        time.sleep(0.001)
    raise RuntimeError(f"pybpf did not reach the {phase} phase: status {proc.poll()}")


def stop_in_phase(phase: str, sig: signal.Signals = signal.SIGINT, program: str = "syscalls",
                  again_after: float | None = None, tries: int = 3) -> dict:
    """Start pybpf on PROGRAMS[program], send sig in `phase` (and once more again_after seconds
    later), -> exit_s (signal to exit), status, held at the signal and the most held after it (an
    interrupted load or attach goes no further), total: the syscalls program's tracepoints."""
    if phase == "print":
        return _stop_while_printing(sig)
    for _ in range(tries - 1):
        try:
            return _stop_in_phase(phase, sig, program, again_after)
        except MissedPhase:
            continue
    return _stop_in_phase(phase, sig, program, again_after)


def _stop_in_phase(phase: str, sig: signal.Signals, program: str, again_after: float | None) -> dict:
    args, env = PROGRAMS[program]
    proc = subprocess.Popen(PYBPF + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, **env))
    try:
        at_signal = wait_for_phase(proc, phase)
        sent = time.monotonic()
        proc.send_signal(sig)
        most = dict(at_signal)
        while proc.poll() is None:
            for kind, count in held(proc.pid).items():
                most[kind] = max(most[kind], count)
            if again_after is not None and time.monotonic() - sent > again_after:
                proc.send_signal(sig)
                again_after = None
            time.sleep(0.001)
        exit_s = time.monotonic() - sent
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"phase": phase, "exit_s": exit_s, "status": proc.returncode,
            "total": wide_count() if program == "syscalls" else None,
            "at_signal": at_signal, "most_after": most, "stdout": out.decode(), "stderr": err.decode()}


def _stop_while_printing(sig: signal.Signals) -> dict:
    """A map of PRINT_KEYS keys (this process's lseek offsets), a first signal to end the run, and
    `sig` once printing has begun: stdout is not read meanwhile, so pybpf waits on a full pipe."""
    lseek = ctypes.CDLL(None).syscall
    program = (f"tracepoint:syscalls:sys_enter_lseek /pid == {os.getpid()}/ "
               "{ @[args->offset] = count(); } BEGIN { printf(\"ready\\n\"); }")
    proc = subprocess.Popen(PYBPF + ["--map-entries", str(2 * PRINT_KEYS), "-e", program],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while b"ready" not in proc.stdout.readline():
            if proc.poll() is not None:
                raise RuntimeError(f"pybpf ended: {proc.stderr.read().decode()}")
        for offset in range(PRINT_KEYS):
            lseek(SYS_lseek, -1, offset, 0)
        proc.send_signal(signal.SIGINT)
        while not proc.stdout.readline().startswith(b"@["):
            pass
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate()
        exit_s = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"phase": "print", "exit_s": exit_s, "status": proc.returncode, "total": PRINT_KEYS,
            "printed": out.count(b"\n") + 1, "stderr": err.decode()}


def options(parser) -> None:
    parser.add_argument("--signal", default="SIGINT", choices=("SIGINT", "SIGTERM", "SIGHUP"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--program", choices=tuple(PROGRAMS), default="syscalls",
                        help="syscalls: the 360 sys_enter tracepoints, one program each; all: "
                             "tracepoint:*:* with BPFTRACE_MAX_PROBES raised (print: always its own map)")


def measure_and_print(opts) -> None:
    """Each phase's row, printed as it is measured."""
    sig = signal.Signals[opts.signal]
    print(f"{'phase':10} {'exit s (each run)':30} {'status':>6}  held at the signal -> most after")
    for phase in opts.phases:
        runs = [stop_in_phase(phase, sig, opts.program) for _ in range(opts.repeat)]
        times = " ".join(f"{r['exit_s']:.3f}" for r in runs)
        last = runs[-1]
        detail = (f"printed {last['printed']:,} of {last['total']:,} map lines" if phase == "print" else
                  f"{last['at_signal']['progs']} progs, {last['at_signal']['perf']} perf -> "
                  f"{last['most_after']['progs']}, {last['most_after']['perf']}"
                  + (f" (of {last['total']})" if last["total"] else ""))
        print(f"{phase:10} {times:30} {last['status']:>6}  {detail}")


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, options, measure_and_print, needs_root=True)


if __name__ == "__main__":
    sys.exit(main())
