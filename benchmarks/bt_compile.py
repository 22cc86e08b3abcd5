"""Compile time of whole scripts, pybpf beside bpftrace (issue 15): bpftrace's own tools (the .bt
files Debian's bpftrace package ships) and pybpf's examples/, each compiled to a BPF ELF object
without loading it.

    sudo python3 -m benchmarks.bt_compile [--repeat N] [FILE.bt ...]

What is measured: wall seconds from exec to exit of `pybpf --emit obj -o FILE SCRIPT` against
`bpftrace --emit-elf FILE SCRIPT` (bpftrace 0.17's compile-only dry run: parse, semantic
analysis, LLVM codegen, the ELF written; neither loads nor attaches anything). pybpf's --emit
never reads its compile cache, so every run compiles; *cold* runs also start with an empty cache
folder (the BTF index and the parser tables are rebuilt: a first run on a machine), *warm* runs
keep those. bpftrace has no cache. Only scripts that both tools compile are compared; the median
of `repeat` runs each, and the sum over the scripts.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks.common import benchmark_main, cold_and_warm, median, run_measured

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def bpftrace_tools() -> list[str]:
    """The .bt tools of Debian's bpftrace package (`dpkg -L bpftrace`)."""
    try:
        out = subprocess.run(["dpkg", "-L", "bpftrace"], capture_output=True, text=True).stdout
    except OSError:
        return []
    return sorted(line for line in out.splitlines() if line.endswith(".bt"))


def compiles(cmd: list[str]) -> bool:
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          timeout=120).returncode == 0


def measure(scripts: list[str], repeat: int) -> dict:
    folder = tempfile.mkdtemp(prefix="pybpf-bench-compile-")
    elf = os.path.join(folder, "out.o")
    results: dict = {}
    try:
        for script in scripts:
            ours = [sys.executable, "-m", "pybpf.cli", "--emit", "obj", "-o", elf, script]
            theirs = ["bpftrace", "--emit-elf", elf, script]
            row: dict = {"pybpf": compiles(ours), "bpftrace": bool(shutil.which("bpftrace"))
                         and compiles(theirs)}
            if row["pybpf"] and row["bpftrace"]:
                cold, warm = cold_and_warm(lambda env: run_measured(ours, env)[0], repeat)
                row.update(pybpf_cold=median(cold), pybpf_warm=median(warm),
                           bpftrace_s=median([run_measured(theirs)[0] for _ in range(repeat)]))
            results[script] = row
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def options(parser) -> None:
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("scripts", nargs="*", help="scripts (default: bpftrace's tools and examples/)")


def print_table(results: dict, opts) -> None:
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'script':<28} {'pybpf cold':>10} {'pybpf warm':>10} {'bpftrace':>9} {'warm/bt':>8}")
    compared = {s: r for s, r in results.items() if "bpftrace_s" in r}
    for script, r in compared.items():
        print(f"{os.path.basename(script):<28} {r['pybpf_cold']:>10.3f} {r['pybpf_warm']:>10.3f} "
              f"{r['bpftrace_s']:>9.3f} {r['pybpf_warm'] / r['bpftrace_s']:>8.2f}")
    if compared:
        sums = [sum(r[k] for r in compared.values()) for k in ("pybpf_cold", "pybpf_warm", "bpftrace_s")]
        print(f"{f'sum of {len(compared)}':<28} {sums[0]:>10.3f} {sums[1]:>10.3f} {sums[2]:>9.3f} "
              f"{sums[1] / sums[2]:>8.2f}")
    for script, r in results.items():
        if script not in compared:
            print(f"not compared: {os.path.basename(script)} (compiles with pybpf: {r['pybpf']}, "
                  f"with bpftrace: {r['bpftrace']})")


def measure_scripts(opts) -> dict:
    scripts = opts.scripts or bpftrace_tools() + sorted(glob.glob(os.path.join(EXAMPLES, "*.pbt")))
    return measure(scripts, opts.repeat)


def main(argv: list[str] | None = None) -> int:
    return benchmark_main(__doc__, argv, options, measure_scripts, print_table)


if __name__ == "__main__":
    sys.exit(main())
