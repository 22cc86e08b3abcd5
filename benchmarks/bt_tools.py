"""Which bpftrace tools compile: `pybpf --verify-only FILE` for every .bt file given (or every .bt in
the folders given), each with its first error and what that error waits on; with --run, the tools
that compile also run for a few seconds under a load this script makes, and whether each printed.

    python3 -m benchmarks.bt_tools /usr/sbin/*.bt          # the tools Debian's bpftrace ships
    python3 -m benchmarks.bt_tools ~/bpftrace-tools        # a folder of bpftrace's tools/*.bt
    sudo python3 -m benchmarks.bt_tools --run 4 ~/bpftrace-tools

Nothing is fetched, and the tools are not kept in this project (bpftrace's are its own): get a
release's with `git clone --depth 1 --branch v0.26.0 https://github.com/bpftrace/bpftrace` and
pass its tools/ folder (docs/language.md, "bpftrace's own tools"). The kind of a failure is
guessed from its message: a probe this kernel lacks, this kernel's types, a function or builtin
(issue #16), stacks (#17), or the language itself (#15).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks.common import stop

TIMEOUT_S = 120
# (kind, pattern over the first error line), first match wins.
KINDS = (
    ("language (#15)", re.compile(r"Unknown identifier: '[A-Z_0-9]+'|syntax error")),
    ("probe this system lacks", re.compile(r"kprobe|kretprobe|fentry|fexit|kfunc|EPERM|not found|"
                                           r"no function|not available")),
    # this kernel's own layout or symbols: a member renamed since the tool was written (runqlen's
    # cfs_rq->nr_running), a data symbol kallsyms lists only with CONFIG_KALLSYMS_ALL (loads' avenrun)
    ("this kernel's types or symbols", re.compile(r"does not contain a field named|"
                                                  r"kaddr: no kernel symbol")),
    # bpftrace 0.22+ scopes variables to their block: a 0.17 tool that sets a variable in both
    # branches of an if and reads it after fails there too (docs/language.md)
    ("0.17 scoping, refused by 0.26 too", re.compile(r"Undefined or undeclared variable")),
    ("stacks (#17)", re.compile(r"kstack|ustack|stack_mode")),
    ("function or builtin (#16)", re.compile(r"Unknown function|Unknown identifier|requires \d|"
                                             r"expects|builtin|not supported by pybpf yet")),
)


def first_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "ERROR" in line]
    return lines[0] if lines else (stderr.strip().splitlines() or ["(no message)"])[-1]


def kind_of(error: str) -> str:
    return next((kind for kind, pattern in KINDS if pattern.search(error)), "language (#15)")


def tools(paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".bt"))
        else:
            found.append(path)
    return found


def make_load(seconds: float) -> None:
    """What the tools trace, for `seconds`: files opened and stat'ed, processes and threads
    started, signals, sleeps, a host name looked up, data written and synced to disk, set*uid."""
    libc = ctypes.CDLL(None, use_errno=True)
    sleep_for = (ctypes.c_long * 2)(0, 20_000_000)
    # nanosleep itself (glibc's nanosleep() calls clock_nanosleep): naptime.bt traces it
    nanosleep = {"x86_64": 35, "aarch64": 101}.get(platform.machine())
    deadline = time.monotonic() + seconds
    with tempfile.TemporaryDirectory(prefix="bt-tools-load-") as folder:
        data = os.path.join(folder, "data")
        while time.monotonic() < deadline:
            for path in ("/etc/hostname", "/etc/passwd"):
                os.stat(path)
                with open(path, "rb") as f:
                    f.read()
            subprocess.run(["/bin/sh", "-c", "ls / > /dev/null; sleep 0.01"], check=False)
            with open(data, "wb") as f:
                f.write(os.urandom(1 << 18))
                f.flush()
                os.fsync(f.fileno())
            os.sync()
            socket.getaddrinfo("localhost", 80)
            worker = threading.Thread(target=time.sleep, args=(0.001,))
            worker.start()
            worker.join()
            os.kill(os.getpid(), 0)
            os.setuid(os.getuid())
            if nanosleep is not None:
                libc.syscall(nanosleep, sleep_for, None)


def run_tool(path: str, seconds: float) -> tuple[int, str]:
    """(lines the tool printed after its `Attaching` line, its first error or "") for one run of
    `seconds` under make_load's load, stopped with SIGINT as a user would."""
    proc = subprocess.Popen([sys.executable, "-m", "pybpf.cli", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            errors="replace")
    lines: list[str] = []
    errors: list[str] = []
    attached = threading.Event()

    def read(stream, into: list[str]):
        for line in stream:
            into.append(line)
            attached.set()
    readers = [threading.Thread(target=read, args=(proc.stdout, lines), daemon=True),
               threading.Thread(target=read, args=(proc.stderr, errors), daemon=True)]
    for reader in readers:
        reader.start()
    attached.wait(TIMEOUT_S)
    time.sleep(1.0)                     # BEGIN's output, and every probe attached
    if proc.poll() is None:
        make_load(seconds)
        stop(proc, TIMEOUT_S)
    proc.wait()
    for reader in readers:
        reader.join(5)
    stderr = "".join(errors)
    printed = sum(1 for line in lines[1:] if line.strip())
    error = "" if proc.returncode == 0 else \
        first_error(stderr) if stderr.strip() else f"exit status {proc.returncode}"
    return printed, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help=".bt files or folders of them")
    parser.add_argument("--run", type=float, metavar="SECONDS",
                        help="also run each tool that compiles for SECONDS under a load made here")
    opts = parser.parse_args(argv)
    files = tools(opts.paths)
    failures, compiled = [], []
    for path in files:
        try:
            result = subprocess.run([sys.executable, "-m", "pybpf.cli", "--verify-only", path],
                                    capture_output=True, text=True, timeout=TIMEOUT_S,
                                    stdin=subprocess.DEVNULL)
            ok, error = result.returncode == 0, first_error(result.stderr)
        except subprocess.TimeoutExpired:
            ok, error = False, f"timed out after {TIMEOUT_S} s"
        if ok:
            compiled.append(path)
        else:
            failures.append((os.path.basename(path), error))
    print(f"{len(compiled)} of {len(files)} compile")
    for name, error in failures:
        print(f"{name:<24} {kind_of(error):<26} {error}")
    if opts.run is not None:
        ran = [(os.path.basename(path), *run_tool(path, opts.run)) for path in compiled]
        printing = sum(1 for _, printed, error in ran if printed and not error)
        print(f"\n{printing} of {len(ran)} print under load in {opts.run:g} s")
        for name, printed, error in ran:
            outcome = f"ERROR at run time: {kind_of(error)}: {error}" if error else \
                f"{printed} lines"
            print(f"{name:<24} {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
