"""Start-up of opensnoop: seconds from the command to its header (every probe attached), pybpf's
(`python -m pybpf.tools.opensnoop`, its compile cache empty, then warm) beside BCC's
(`opensnoop-bpfcc`, which compiles C with clang at every start) where bpfcc-tools is installed.
Median and min of `repeat` runs.

    python -m benchmarks.tool_startup [--repeat N]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from benchmarks.common import benchmark_main, cold_and_warm, median, stop, wait_for_line

PYBPF_OPENSNOOP = [sys.executable, "-m", "pybpf.tools.opensnoop"]


def time_to_header(cmd: list[str], env: dict[str, str] | None = None) -> float | None:
    """Seconds from starting `cmd` to its PID... header line; None if it never printed one."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    found = wait_for_line(proc, "PID")
    took = time.perf_counter() - start
    stop(proc)
    proc.stdout.close()
    return took if found else None


def measure(repeat: int) -> dict[str, list[float | None]]:
    results: dict[str, list[float | None]] = {}
    results["pybpf cold cache"], results["pybpf warm cache"] = cold_and_warm(
        lambda env: time_to_header(PYBPF_OPENSNOOP, env), repeat)
    bcc = shutil.which("opensnoop-bpfcc")
    if bcc:
        results["BCC"] = [time_to_header([bcc]) for _ in range(repeat)]
    return results


def print_table(results: dict, opts) -> None:
    print(f"{'opensnoop start-up':<20} {'median s':>9} {'min s':>7}")
    for label, runs in results.items():
        done = [r for r in runs if r is not None]
        print(f"{label:<20} {median(done) or float('nan'):>9.3f} "
              f"{min(done) if done else float('nan'):>7.3f}" + ("" if len(done) == len(runs)
                                                               else f"  ({len(runs) - len(done)} failed)"))
    if "BCC" not in results:
        print("BCC: opensnoop-bpfcc is not installed (apt-get install bpfcc-tools)")


def main(argv: list[str] | None = None) -> int:
    return benchmark_main(__doc__, argv, lambda p: p.add_argument("--repeat", type=int, default=5),
                          lambda opts: measure(opts.repeat), print_table)


if __name__ == "__main__":
    sys.exit(main())
