"""pybpf beside bpftrace, in one run on one machine: the benchmark suite of issue 6.

    python3 -m benchmarks.run              # table on stdout, JSON in benchmarks/results.json
    python3 -m benchmarks.run --quick      # a smoke run (CI): fewer repetitions, events and keys

Needs root, bpftool (program statistics) and a C compiler (the syscall-loop workload is built in a
temp dir at run time). bpftrace columns are filled when `bpftrace` is on PATH (Debian's package); the
ratio column is pybpf / bpftrace. Sections, one module each:

    startup          wall time (median and min) and peak RSS, cold and warm cache
    first            exec to first event printed, SIGINT to exit, peak RSS: pybpf, bpftrace, libbpf-tools
    kernel_cost      ns/event from kernel.bpf_stats_enabled, raw and above the empty program's floor
    syscall_overhead ns a syscall wildcard adds to the syscalls it traces and to the others
    streaming        a million printf events: delivered, lost, per second, slowdown of the traced loop
    map_output       SIGINT to exit with a 100,000-key map and a 10,000-key hist map
    compile_stages   pybpf's compile time by stage for a 50-probe script; both tools' start-up on it

What each number means, and the results on the reference machine: docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

from benchmarks import (compile_stages, first_event, kernel_cost, map_output, startup, streaming,
                        syscall_overhead)
from benchmarks.common import BpfStats, benchmark_main

FULL = dict(repeat=5, cost_repeat=3, events=200_000, stream_events=1_000_000, stream_repeat=3,
            keys=100_000, hist_keys=10_000, map_repeat=3, probes=50, compile_repeat=3, cost_scripts=None,
            big_buffer="64M", overhead_events=2_000_000, first_repeat=5, first_scripts=None)
SECTIONS = ("startup", "first", "cost", "overhead", "streaming", "maps", "compile")
QUICK = dict(repeat=1, cost_repeat=1, events=2000, stream_events=20_000, stream_repeat=1,
             keys=2000, hist_keys=200, map_repeat=1, probes=3, compile_repeat=1,
             cost_scripts=("empty (getppid)", "count by comm", "printf 3 args"), big_buffer=None,
             overhead_events=20_000, first_repeat=1, first_scripts=("opensnoop",))


def machine() -> dict:
    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return None
    try:
        import llvmlite
        llvmlite_version = llvmlite.__version__
    except ImportError:
        llvmlite_version = None
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_gib": round(mem_kib / 1024 ** 2, 1), "python": platform.python_version(),
            "llvmlite": llvmlite_version, "bpftrace": version(["bpftrace", "--version"])}


def options(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--baseline-ref", metavar="REF",
                        help="first-event section: also run the pybpf of this commit (e.g. main), installed "
                             "as this checkout is")
    parser.add_argument("--only", choices=SECTIONS, action="append",
                        help="run only these sections (repeatable)")


def measure(opts) -> dict:
    p = QUICK if opts.quick else FULL
    tools = ["pybpf"] + (["bpftrace"] if shutil.which("bpftrace") else [])
    want = set(opts.only or SECTIONS)
    results = {"machine": machine(), "quick": opts.quick, "parameters": p,
               "load_average_start": os.getloadavg()}
    if "overhead" in want:          # measured as in use: without bpf_stats' per-run bookkeeping
        results["syscall_overhead"] = syscall_overhead.measure(tools, p["overhead_events"], p["repeat"])
    with BpfStats():
        if "startup" in want:
            results["startup"] = {t: startup.measure(t, p["repeat"]) for t in tools}
        if "first" in want:
            results["first_event"] = first_event.measure(p["first_repeat"], p["first_scripts"],
                                                         opts.baseline_ref)
        if "cost" in want:
            results["cost_ns"] = kernel_cost.measure(tools, p["events"], p["cost_repeat"], p["cost_scripts"])
        if "streaming" in want:
            results["streaming"] = streaming.measure(tools, p["stream_events"], p["stream_repeat"],
                                                     p["big_buffer"])
        if "maps" in want:
            results["map_output"] = map_output.measure(tools, p["keys"], p["hist_keys"], p["map_repeat"])
        if "compile" in want:
            results["compile"] = compile_stages.measure(tools, p["compile_repeat"], p["probes"])
    results["load_average_end"] = os.getloadavg()
    return results


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, options, measure, lambda results, opts: print_table(results),
                          needs_root=True, json_output="file",
                          json_default=os.path.join(os.path.dirname(__file__), "results.json"))


# results key -> the section module that turns it into table rows, in table order
ROW_SECTIONS = (("startup", startup), ("first_event", first_event), ("cost_ns", kernel_cost),
                ("syscall_overhead", syscall_overhead), ("streaming", streaming), ("map_output", map_output), ("compile", compile_stages))


def table_rows(results: dict) -> list[tuple]:
    """(label, pybpf, bpftrace, unit, C) rows; a section without a C column gives 4-tuples."""
    return [(*row, None)[:5] for key, section in ROW_SECTIONS if key in results
            for row in section.rows(results[key])]


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def _number(v, unit) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or (unit in ("", "/s") and float(v).is_integer()) or unit == "/s":
        return f"{v:,.0f}"
    return f"{v:.3f}" if unit in ("s", "MiB", "x") else f"{v:.1f}"


def print_table(results: dict) -> None:
    """ratio = pybpf / bpftrace; /C = pybpf / the hand-written C (libbpf-tools, or the cost section's
    clang-built references)."""
    print(f"load average at start {_loads(results.get('load_average_start'))}, "
          f"at end {_loads(results.get('load_average_end'))}")
    print(f"{'measure':48} {'unit':>4} {'pybpf':>10} {'bpftrace':>10} {'C':>10} {'ratio':>6} {'/C':>6}")
    for label, ours, theirs, unit, c in table_rows(results):
        print(f"{label:48} {unit:>4} {_number(ours, unit):>10} {_number(theirs, unit):>10} "
              f"{_number(c, unit):>10} {ratio(ours, theirs):>6} {ratio(ours, c):>6}")


def _loads(loads) -> str:
    return " ".join(f"{v:.2f}" for v in loads) if loads else "-"


if __name__ == "__main__":
    sys.exit(main())
