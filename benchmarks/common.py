"""Shared pieces of the benchmark runner: tracer command lines, measuring a run, bpftool program
statistics, and the syscall-loop workload (a small C program compiled into a temp dir at run time)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The workload's comm, which the traced scripts filter on (so other processes' syscalls do not count).
LOOP_COMM = "bpfbenchloop"

_LOOP_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>

/* bpfbenchloop getppid N      : N getppid syscalls
   bpfbenchloop lseek N        : lseek(fd, i, SEEK_SET) for i in 0..N-1 (distinct map keys)
   bpfbenchloop openat N PATH  : N openat(PATH) + close
   Prints the loop's wall time in ns.
   bpfbenchloop run CMD...     : run CMD (output to /dev/null), print "wall_ns peak_rss_kib". A small
   process measures it: a child's ru_maxrss includes the RSS of the process it was forked from.
   bpfbenchloop first MARKER TIMEOUT_MS CMD... : run CMD on a pseudo-terminal (as a user sees it: a
   C tool's stdout is line-buffered there), read its output until MARKER appears, SIGINT it, drain
   it, reap it; print "first_ns sigint_to_exit_ns peak_rss_kib" (first_ns -1: MARKER never came).
   bpfbenchloop tick-open PATH : open and close PATH every 2 ms, until killed.
   bpfbenchloop tick-exec      : fork and exec this program (mode noop) every 2 ms, until killed. */

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int first_event(const char *marker, long timeout_ms, char **cmd) {
    static char seen[1 << 16];
    size_t used = 0;
    int master, status;
    struct rusage ru;
    long long start = now_ns(), first = -1, sigint = 0;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    if (pid < 0) return 1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    for (;;) {
        struct pollfd p = { master, POLLIN, 0 };
        long wait_ms = first < 0 ? timeout_ms - (now_ns() - start) / 1000000 : 60000;
        if (wait_ms <= 0 || poll(&p, 1, wait_ms) <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        char buf[4096];
        ssize_t n = read(master, buf, sizeof buf);
        if (n <= 0) break;              /* EIO: the tracer and its terminal are gone */
        if (first >= 0) continue;
        if (used + n >= sizeof seen) {  /* keep the tail, where a split marker may start */
            memmove(seen, seen + used - 256, 256);
            used = 256;
        }
        memcpy(seen + used, buf, n);
        used += n;
        seen[used] = 0;
        if (strstr(seen, marker)) {
            first = now_ns() - start;
            sigint = now_ns();
            kill(pid, SIGINT);
        }
    }
    wait4(pid, &status, 0, &ru);
    printf("%lld %lld %ld\n", first, first < 0 ? -1 : now_ns() - sigint, ru.ru_maxrss);
    return 0;
}

static int tick(const char *mode, const char *path) {
    struct timespec two_ms = { 0, 2000000 };
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0) return 1;
    self[len] = 0;
    for (;;) {
        if (!strcmp(mode, "tick-open")) {
            int f = open(path, O_RDONLY);
            if (f >= 0) close(f);
        } else {
            pid_t pid = fork();
            if (pid == 0) { execl(self, self, "noop", (char *)NULL); _exit(127); }
            if (pid > 0) waitpid(pid, NULL, 0);
        }
        nanosleep(&two_ms, NULL);
    }
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "first"))
        return first_event(argv[2], atol(argv[3]), argv + 4);
    if (argc >= 2 && !strncmp(argv[1], "tick-", 5))
        return tick(argv[1], argc >= 3 ? argv[2] : NULL);
    if (argc >= 2 && !strcmp(argv[1], "noop"))
        return 0;
    if (argc >= 3 && !strcmp(argv[1], "run")) {
        struct timespec a, b;
        struct rusage ru;
        int status;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid = fork();
        if (pid == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1); dup2(null, 2);
            execvp(argv[2], argv + 2);
            _exit(127);
        }
        wait4(pid, &status, 0, &ru);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%lld %ld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
               ru.ru_maxrss);
        return 0;
    }
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    int fd = open("/dev/null", O_RDONLY);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (!strcmp(argv[1], "getppid")) {
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
    } else if (!strcmp(argv[1], "lseek")) {
        for (long i = 0; i < n; i++) syscall(SYS_lseek, fd, i, SEEK_SET);
    } else if (!strcmp(argv[1], "openat")) {
        for (long i = 0; i < n; i++) { int f = open(argv[3], O_RDONLY); if (f >= 0) close(f); }
    } else return 2;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
}
"""

_loop_binary: str | None = None


def loop_binary() -> str:
    """Path of the compiled workload (built once per run with cc, in a temp dir; never committed)."""
    global _loop_binary
    if _loop_binary is None:
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("the benchmarks need a C compiler (cc) for their syscall loop")
        folder = tempfile.mkdtemp(prefix="pybpf-bench-")
        src, exe = os.path.join(folder, "loop.c"), os.path.join(folder, LOOP_COMM)
        with open(src, "w") as f:
            f.write(_LOOP_C)
        subprocess.run([cc, "-O2", "-o", exe, src, "-lutil"], check=True)
        _loop_binary = exe
    return _loop_binary


def run_loop(mode: str, n: int, *extra: str) -> float:
    """Run the workload; seconds its loop took (measured inside it)."""
    out = subprocess.run([loop_binary(), mode, str(n), *extra], capture_output=True, text=True, check=True)
    return int(out.stdout) / 1e9


def tracer_command(tool: str, program: str, extra=()) -> list[str]:
    if tool == "pybpf":
        return [sys.executable, "-m", "pybpf.cli", *extra, "-e", program]
    return ["bpftrace", *extra, "-e", program]


def run_measured(cmd: list[str], env=None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run of cmd to completion, measured by the small C
    workload: a child forked from this (large) Python process would report our RSS as its peak."""
    out = subprocess.run([loop_binary(), "run", *cmd], capture_output=True, text=True, env=env, check=True)
    wall_ns, rss_kib = out.stdout.split()
    return int(wall_ns) / 1e9, int(rss_kib)


def loaded_programs() -> dict[int, dict]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True)
    return {p["id"]: p for p in json.loads(out.stdout or "[]")}


CACHE_PHASES = ("cold", "warm")


def cache_phases(run, repeat: int, phases=CACHE_PHASES) -> dict[str, list]:
    """phase -> `repeat` results of run(env), in the order given, on a throwaway pybpf cache
    (removed at the end). Before each run the phase empties:
    - "cold": the whole cache (pybpf's first run on the machine: no parser tables, no BTF index);
    - "new script": only the compiled objects (a script not run before, the rest cached);
    - "warm": nothing (the object of the run before is reused)."""
    from pybpf.cache import FOLDER as OBJECTS_FOLDER

    cache = tempfile.mkdtemp(prefix="pybpf-bench-cache-")
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    emptied = {"cold": cache, "new script": os.path.join(cache, "pybpf", OBJECTS_FOLDER), "warm": None}
    try:
        results: dict[str, list] = {}
        for phase in phases:
            results[phase] = []
            for _ in range(repeat):
                if emptied[phase]:
                    shutil.rmtree(emptied[phase], ignore_errors=True)
                results[phase].append(run(env))
        return results
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def cold_and_warm(run, repeat: int) -> tuple[list, list]:
    """run(env) `repeat` times with pybpf's cache emptied before each (cold), then `repeat` times
    reusing it (warm)."""
    phases = cache_phases(run, repeat)
    return phases["cold"], phases["warm"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 30) -> bool:
    """Read the tracer's stdout until a line starting with prefix (False at EOF)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return False
        if line.startswith(prefix):
            return True
    return False


def stop(proc: subprocess.Popen, timeout: float = 60) -> float:
    """SIGINT, then wait: seconds from the signal to the process's exit."""
    import signal

    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print(f"warning: {proc.args[0]} did not exit {timeout} s after SIGINT: killed", file=sys.stderr)
    return time.perf_counter() - start


class BpfStats:
    """kernel.bpf_stats_enabled=1 for the duration (run_time_ns, run_cnt per program)."""
    PATH = "/proc/sys/kernel/bpf_stats_enabled"

    def __enter__(self):
        with open(self.PATH) as f:
            self.before = f.read().strip()
        with open(self.PATH, "w") as f:
            f.write("1")
        return self

    def __exit__(self, *exc):
        with open(self.PATH, "w") as f:
            f.write(self.before)


def program_ids(pid: int) -> set[int]:
    """Ids of the BPF programs a process holds open (from /proc/PID/fdinfo: `prog_id:`)."""
    ids = set()
    folder = f"/proc/{pid}/fdinfo"
    try:
        names = os.listdir(folder)
    except OSError:
        return ids
    for name in names:
        try:
            with open(os.path.join(folder, name)) as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return ids


def wait_attached(proc: subprocess.Popen, before: set[int], fire, timeout: float = 30) -> list[int]:
    """Ids of the tracer's programs, once one of them has run: call fire() (a few events) until a
    program the tracer holds counts runs (other sessions' programs do not count: concurrent runs
    load programs too). Needs kernel.bpf_stats_enabled=1. [] on failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        fire()
        mine = program_ids(proc.pid) - before
        progs = loaded_programs() if mine else {}
        new = [i for i, p in progs.items() if i in mine and p.get("run_cnt")]
        if new:
            return new
        time.sleep(0.1)
    return []


def benchmark_main(doc: str, argv: list[str] | None, add_options, measure, print_table=None, *,
                   needs_root: bool = False, json_output: str | None = None,
                   json_default: str | None = None) -> int:
    """A benchmark's main(): its options (`add_options(parser)`, described by `doc`'s first
    paragraph), a root check when `needs_root`, `measure(opts)` -> results, then
    `print_table(results, opts)`. JSON: with json_output "file", `--json FILE` (default
    `json_default`) also writes the results to FILE; with "stdout", `--json` prints them instead
    of the table."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    add_options(parser)
    if json_output == "file":
        parser.add_argument("--json", metavar="FILE", default=json_default)
    elif json_output == "stdout":
        parser.add_argument("--json", action="store_true", help="the results as JSON, not a table")
    opts = parser.parse_args(argv)
    if needs_root and os.geteuid() != 0:
        print("benchmarks need root", file=sys.stderr)
        return 1
    results = measure(opts)
    if json_output == "stdout" and opts.json:
        print(json.dumps(results, indent=2))
        return 0
    if json_output == "file" and opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=2)
    if print_table is not None:
        print_table(results, opts)
    return 0
