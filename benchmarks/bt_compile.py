"""Compile time of whole scripts, pybpf beside bpftrace (issue 15): bpftrace's own tools (the .bt
files Debian's bpftrace package ships, or those of a bpftrace release fetched as docs/language.md
says) and pybpf's examples/, each compiled to a BPF ELF object without loading it.

    sudo python3 -m benchmarks.bt_compile [--repeat N] [FILE.bt ...]
    sudo python3 -m benchmarks.bt_compile --repeat 5 $(dpkg -L bpftrace | grep '\.bt$')

What is measured: wall seconds from exec to exit of `pybpf --emit obj -o FILE SCRIPT` against
`bpftrace --emit-elf FILE SCRIPT` (bpftrace 0.17's compile-only dry run: parse, semantic
analysis, LLVM codegen, the ELF written; neither loads nor attaches anything). pybpf runs as a user
runs it: the `pybpf` console script of a fresh venv that pip installed this checkout into (as
benchmarks/first_event.py does; its parser tables ship with it). Its --emit never reads its
compile cache, so every run compiles; *cold* runs also start with an empty cache folder (the BTF
index is rebuilt: a first run on a machine), *warm* runs keep it. bpftrace has no cache. Only
scripts that both tools compile are compared; the median of `repeat` runs each, and the sum over
the scripts. Issue 15's measure, the longest tool (by lines) that both compile, has its own line:
cold pybpf over bpftrace.

`--baseline-ref REF` also installs commit REF of this repository (as benchmarks/first_event.py
does) and measures it beside this checkout: each repetition runs the baseline and this checkout,
cold then warm, then bpftrace, in turn, so a before/after comes from one run at one load.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks.common import benchmark_main, cold_and_warm, median, run_measured
from benchmarks.first_event import _install_baseline, install_pybpf

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(CHECKOUT, "examples")


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


def in_turn(commands: dict[str, list[str]], repeat: int, folder: str) -> dict[str, list[float]]:
    """name -> wall seconds of `repeat` runs of each command, the commands taken in turn in each
    repetition: a pybpf command runs cold (its cache emptied) and then warm (the cache that run
    filled), the others as they are."""
    times: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, cmd in commands.items():
            if name == "bpftrace":
                times.setdefault(name, []).append(run_measured(cmd)[0])
                continue
            env = dict(os.environ, XDG_CACHE_HOME=os.path.join(folder, f"cache-{name}"))
            shutil.rmtree(env["XDG_CACHE_HOME"], ignore_errors=True)
            for phase in ("cold", "warm"):
                times.setdefault(f"{name} {phase}", []).append(run_measured(cmd, env)[0])
    return times


def measure(scripts: list[str], repeat: int, baseline_ref: str | None = None) -> dict:
    folder = tempfile.mkdtemp(prefix="pybpf-bench-compile-")
    elf = os.path.join(folder, "out.o")
    results: dict = {}
    try:
        pybpf = install_pybpf(CHECKOUT, os.path.join(folder, "venv"))
        baseline = _install_baseline(baseline_ref, folder) if baseline_ref else None
        for script in scripts:
            ours = [pybpf, "--emit", "obj", "-o", elf, script]
            theirs = ["bpftrace", "--emit-elf", elf, script]
            with open(script, "rb") as f:
                lines = f.read().count(b"\n")
            row: dict = {"lines": lines, "pybpf": compiles(ours),
                         "bpftrace": bool(shutil.which("bpftrace")) and compiles(theirs)}
            if row["pybpf"] and row["bpftrace"] and baseline:
                times = in_turn({"baseline": [baseline, *ours[1:]], "pybpf": ours, "bpftrace": theirs},
                                repeat, folder)
                row.update(pybpf_cold=median(times["pybpf cold"]), pybpf_warm=median(times["pybpf warm"]),
                           baseline_cold=median(times["baseline cold"]),
                           baseline_warm=median(times["baseline warm"]), bpftrace_s=median(times["bpftrace"]))
            elif row["pybpf"] and row["bpftrace"]:
                cold, warm = cold_and_warm(lambda env: run_measured(ours, env)[0], repeat)
                row.update(pybpf_cold=median(cold), pybpf_warm=median(warm),
                           bpftrace_s=median([run_measured(theirs)[0] for _ in range(repeat)]))
            results[script] = row
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def options(parser) -> None:
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-ref", metavar="REF",
                        help="also measure commit REF of this repository, in turn with this checkout")
    parser.add_argument("scripts", nargs="*", help="scripts (default: bpftrace's tools and examples/)")


def print_table(results: dict, opts) -> None:
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'script':<28} {'lines':>5} {'pybpf cold':>10} {'pybpf warm':>10} {'bpftrace':>9} "
          f"{'cold/bt':>8} {'warm/bt':>8}")
    compared = {s: r for s, r in results.items() if "bpftrace_s" in r}
    for script, r in compared.items():
        print(f"{os.path.basename(script):<28} {r['lines']:>5} {r['pybpf_cold']:>10.3f} "
              f"{r['pybpf_warm']:>10.3f} {r['bpftrace_s']:>9.3f} {r['pybpf_cold'] / r['bpftrace_s']:>8.2f} "
              f"{r['pybpf_warm'] / r['bpftrace_s']:>8.2f}")
        if "baseline_cold" in r:
            print(f"{'  baseline ' + opts.baseline_ref:<28} {'':>5} {r['baseline_cold']:>10.3f} "
                  f"{r['baseline_warm']:>10.3f} {'':>9} {r['baseline_cold'] / r['bpftrace_s']:>8.2f} "
                  f"{r['baseline_warm'] / r['bpftrace_s']:>8.2f}")
    if compared:
        sums = [sum(r[k] for r in compared.values()) for k in ("pybpf_cold", "pybpf_warm", "bpftrace_s")]
        print(f"{f'sum of {len(compared)}':<28} {'':>5} {sums[0]:>10.3f} {sums[1]:>10.3f} {sums[2]:>9.3f} "
              f"{sums[0] / sums[2]:>8.2f} {sums[1] / sums[2]:>8.2f}")
    for script, r in results.items():
        if script not in compared:
            print(f"not compared: {os.path.basename(script)} (compiles with pybpf: {r['pybpf']}, "
                  f"with bpftrace: {r['bpftrace']})")
    tools = {s: r for s, r in results.items() if s.endswith(".bt")}
    if tools:
        longest = max(tools, key=lambda s: (tools[s]["lines"], s))
        both = [s for s in tools if s in compared]
        if both:
            s = max(both, key=lambda s: (tools[s]["lines"], s))
            r = compared[s]
            print(f"longest tool both compile: {os.path.basename(s)} ({r['lines']} lines): pybpf cold "
                  f"{r['pybpf_cold']:.3f} s (warm {r['pybpf_warm']:.3f} s), bpftrace {r['bpftrace_s']:.3f} s, "
                  f"cold/bpftrace {r['pybpf_cold'] / r['bpftrace_s']:.2f}")
        if longest not in compared:
            print(f"longest tool: {os.path.basename(longest)} ({tools[longest]['lines']} lines), not "
                  f"compared (compiles with pybpf: {tools[longest]['pybpf']}, with bpftrace: "
                  f"{tools[longest]['bpftrace']})")


def measure_scripts(opts) -> dict:
    scripts = opts.scripts or bpftrace_tools() + sorted(glob.glob(os.path.join(EXAMPLES, "*.pbt")))
    return measure(scripts, opts.repeat, opts.baseline_ref)


def main(argv: list[str] | None = None) -> int:
    return benchmark_main(__doc__, argv, options, measure_scripts, print_table)


if __name__ == "__main__":
    sys.exit(main())
