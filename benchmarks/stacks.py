"""Stacks, pybpf beside bpftrace (issue 17): start-up of a stack script, and printing 10,000
distinct stacks at exit.

    sudo python3 -m benchmarks.stacks [--repeat N] [--stacks N]

start-up: seconds from exec to the `ready` line that BEGIN prints once every probe is attached, of
`profile:hz:99 { @[kstack] = count(); }`, on a pseudo-terminal (benchmarks.common's `first`
mode); pybpf with its compile cache emptied before each run (cold) and reused (warm).
print: a C program (built at run time) calls its leaf through N distinct chains of 14 frames
(f0 or f1 at each level, by the bits of i), and `uprobe:PROG:leaf { @[ustack] = count(); }`
counts them; seconds from SIGINT to the tracer's exit (detach, read the map and its stack ids,
symbolize, print to a file), with the keys printed. Both tools get 131,072 map entries (pybpf
--map-entries, bpftrace BPFTRACE_MAP_KEYS_MAX; bpftrace 0.17's stack map has 131,072 entries,
pybpf's follows --map-entries): of 10,000 stacks a few hundred collide in the kernel's stack-map
hash and print as an empty stack, in both tools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks.common import benchmark_main, cold_and_warm, loop_binary, median, stop, tracer_command

READY = 'BEGIN { printf("ready\\n"); } '
STARTUP_SCRIPT = READY + "profile:hz:99 { @[kstack] = count(); }"
MAP_KEYS = 131072
PATHS_C = r"""
#include <stdlib.h>
#define BITS 14
__attribute__((noinline)) void leaf(void) { __asm__ volatile(""); }
__attribute__((noinline)) void f0(unsigned i, int level);
__attribute__((noinline)) void f1(unsigned i, int level);
static void next(unsigned i, int level) {
    if (level == BITS) { leaf(); return; }
    if ((i >> level) & 1) f1(i, level + 1); else f0(i, level + 1);
}
__attribute__((noinline)) void f0(unsigned i, int level) { next(i, level); __asm__ volatile(""); }
__attribute__((noinline)) void f1(unsigned i, int level) { next(i, level); __asm__ volatile(""); }
int main(int argc, char **argv) {
    unsigned n = atoi(argv[1]);
    for (unsigned i = 0; i < n; i++) next(i, 0);
    return 0;
}
"""


def time_to_ready(tool: str, env: dict[str, str] | None = None) -> float | None:
    """Exec to the `ready` line, on a pseudo-terminal; None if it never came."""
    out = subprocess.run([loop_binary(), "first", "ready", "60000",
                          *tracer_command(tool, STARTUP_SCRIPT)],
                         capture_output=True, text=True, env=env, check=True)
    first_ns = int(out.stdout.split()[0])
    return first_ns / 1e9 if first_ns >= 0 else None


def build_paths(folder: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("the stacks benchmark needs a C compiler (cc)")
    src, exe = os.path.join(folder, "paths.c"), os.path.join(folder, "paths")
    with open(src, "w") as f:
        f.write(PATHS_C)
    subprocess.run([cc, "-O1", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls", "-o", exe,
                    src], check=True)
    return exe


def print_stacks_once(tool: str, paths: str, stacks: int, folder: str) -> dict | None:
    """SIGINT-to-exit seconds and the keys printed, for `stacks` distinct user stacks."""
    script = READY + f"uprobe:{paths}:leaf {{ @[ustack] = count(); }}"
    extra = ("--map-entries", str(MAP_KEYS)) if tool == "pybpf" else ()
    env = dict(os.environ, BPFTRACE_MAP_KEYS_MAX=str(MAP_KEYS))
    path = os.path.join(folder, f"{tool}.out")
    with open(path, "w") as out:
        proc = subprocess.Popen(tracer_command(tool, script, extra), stdout=out,
                                stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with open(path) as f:
                if "ready\n" in f.read():
                    break
            time.sleep(0.05)
        else:
            return None
        subprocess.run([paths, str(stacks)], check=True)
    finally:
        seconds = stop(proc)
    with open(path, errors="replace") as f:
        text = f.read()
    return {"exit_s": seconds, "keys": text.count("\n@["), "empty": text.count("\n@[]: ")}


def measure(repeat: int, stacks: int) -> dict:
    results: dict = {"startup": {}, "print": {}, "stacks": stacks}
    tools = ["pybpf"] + (["bpftrace"] if shutil.which("bpftrace") else [])
    cold, warm = cold_and_warm(lambda env: time_to_ready("pybpf", env), repeat)
    results["startup"]["pybpf cold"], results["startup"]["pybpf warm"] = cold, warm
    if "bpftrace" in tools:
        results["startup"]["bpftrace"] = [time_to_ready("bpftrace") for _ in range(repeat)]
    folder = tempfile.mkdtemp(prefix="pybpf-bench-stacks-")
    try:
        paths = build_paths(folder)
        for tool in tools:          # in turn within each repetition: a noisy minute hits both
            results["print"].setdefault(tool, [])
        for _ in range(repeat):
            for tool in tools:
                results["print"][tool].append(print_stacks_once(tool, paths, stacks, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def options(parser) -> None:
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stacks", type=int, default=10000)


def print_table(results: dict, opts) -> None:
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'stack script start-up (exec to attached)':<44} {'median s':>9} {'min s':>7}")
    for label, runs in results["startup"].items():
        done = [r for r in runs if r is not None]
        print(f"{label:<44} {median(done) or float('nan'):>9.3f} {min(done, default=float('nan')):>7.3f}")
    print(f"{f'print {opts.stacks:,} distinct stacks (SIGINT to exit)':<44} {'median s':>9} "
          f"{'min s':>7} {'keys':>6} {'empty':>6}")
    for tool, runs in results["print"].items():
        done = [r for r in runs if r]
        secs = [r["exit_s"] for r in done]
        print(f"{tool:<44} {median(secs) or float('nan'):>9.3f} {min(secs, default=float('nan')):>7.3f} "
              f"{median([r['keys'] for r in done]) or 0:>6.0f} {median([r['empty'] for r in done]) or 0:>6.0f}")


def main(argv: list[str] | None = None) -> int:
    return benchmark_main(__doc__, argv, options, lambda opts: measure(opts.repeat, opts.stacks),
                          print_table, needs_root=True)


if __name__ == "__main__":
    sys.exit(main())
