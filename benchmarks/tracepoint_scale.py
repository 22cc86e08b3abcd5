"""Wide tracepoint scripts, pybpf beside bpftrace: seconds from exec to every probe attached, and
from SIGINT to exit, for `@[probe] = count()` on 100, 1,000 and every tracepoint.

    python3 -m benchmarks.tracepoint_scale                    # table; JSON with --json FILE
    python3 -m benchmarks.tracepoint_scale --sizes 100 1000 --repeat 3 --tools pybpf

The script is `TRACEPOINTS { @[probe] = count(); } BEGIN { printf("attached\\n"); }`: both tools
run BEGIN once every probe is attached, so its line marks the end of attaching. TRACEPOINTS is
`tracepoint:*:*` for "all", else N tracepoints taken at even steps through tracefs's sorted list
(so each size has the same mix of syscalls and the rest). After the line the tracer gets SIGINT;
the exit is timed while its output (the map, one line per tracepoint that fired) is read.
pybpf runs as a user runs it (the `pybpf` console script of a fresh venv that pip installed this
checkout into, as benchmarks/first_event.py does: its parser tables ship with it), with its cache
emptied (cold: its first run on the machine), then with only the compiled objects removed (new
script: the BTF index kept), then reused (warm). bpftrace compiles every time.
BPFTRACE_MAX_PROBES (and bpftrace's BPFTRACE_MAX_BPF_PROGS) are raised. A tracer that has not
attached after TIMEOUT_S is stopped and its run counted as failed, with the time it was given.
Needs root and tracefs; bpftrace columns when `bpftrace` is on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks.common import benchmark_main, cache_phases, median
from benchmarks.first_event import CHECKOUT, install_pybpf

SIZES = ("100", "1000", "all")
BODY = ' { @[probe] = count(); } BEGIN { printf("attached\\n"); }'
MARKER = "attached"
TIMEOUT_S = 900.0


def tracepoints() -> list[str]:
    from pybpf.tracefs import list_tracepoints
    return [f"tracepoint:{c}:{n}" for c, n in list_tracepoints()]


def script(size: str) -> str:
    if size == "all":
        return "tracepoint:*:*" + BODY
    names = tracepoints()
    n = int(size)
    if n > len(names):
        raise SystemExit(f"this kernel has {len(names)} tracepoints, fewer than {n}")
    return ",".join(names[i * len(names) // n] for i in range(n)) + BODY


def run_once(cmd: list[str], program: str, env: dict[str, str] | None = None) -> dict:
    """One run of the tracer cmd: exec to the marker line, SIGINT to exit, the probes it said it
    attached."""
    env = dict(env or os.environ, BPFTRACE_MAX_PROBES="100000", BPFTRACE_MAX_BPF_PROGS="100000")
    start = time.perf_counter()
    # bpftrace writes to a pipe in blocks: line-buffered (stdbuf), the marker comes when printed
    cmd = [*cmd, "-e", program]
    proc = subprocess.Popen(["stdbuf", "-oL", *cmd] if cmd[0] == "bpftrace" else cmd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    probes, attached_s = None, None
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    drain.start()
    watchdog = threading.Timer(TIMEOUT_S, proc.kill)      # ends the read below if it never attaches
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.startswith("Attaching "):
                probes = int(line.split()[1])
            if line.startswith(MARKER):
                attached_s = time.perf_counter() - start
                break
        watchdog.cancel()
        if attached_s is None:
            proc.wait()
            waited = time.perf_counter() - start
            error = f"not attached after {waited:.0f} s, killed" if waited >= TIMEOUT_S else \
                "".join(stderr)[-2000:]
            return {"attached_s": None, "exit_s": None, "probes": probes, "error": error}
        rest = threading.Thread(target=proc.stdout.read, daemon=True)   # the map: never blocks it
        rest.start()
        signalled = time.perf_counter()
        proc.send_signal(2)
        proc.wait(timeout=TIMEOUT_S)
        exit_s = time.perf_counter() - signalled
        rest.join()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    drain.join()
    return {"attached_s": attached_s, "exit_s": exit_s, "probes": probes, "status": proc.returncode}


def measure(sizes=SIZES, repeat: int = 1, tools=("pybpf", "bpftrace")) -> dict:
    results: dict[str, dict[str, list[dict]]] = {}
    folder = tempfile.mkdtemp(prefix="pybpf-bench-tracepoints-")
    try:
        pybpf = install_pybpf(CHECKOUT, os.path.join(folder, "venv")) if "pybpf" in tools else ""
        for size in sizes:
            program = script(size)
            row = results[size] = {}
            if "pybpf" in tools:
                phases = cache_phases(lambda env: run_once([pybpf], program, env), repeat,
                                      ("cold", "new script", "warm"))
                row.update((f"pybpf {phase}", runs) for phase, runs in phases.items())
            if "bpftrace" in tools and shutil.which("bpftrace"):
                row["bpftrace"] = [run_once(["bpftrace"], program) for _ in range(repeat)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def summary(runs: list[dict]) -> dict:
    return {"attached_s": median([r["attached_s"] for r in runs]),
            "exit_s": median([r["exit_s"] for r in runs]),
            "probes": next((r["probes"] for r in runs if r["probes"]), None),
            "failed": sum(r["attached_s"] is None for r in runs)}


def options(parser) -> None:
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tools", nargs="+", default=["pybpf", "bpftrace"])


def print_table(results: dict, opts) -> None:
    def fmt(v):
        return f"{v:>9.3f}" if v is not None else f"{'-':>9}"

    print(f"{'tracepoints':>11} {'tracer':<17} {'probes':>7} {'attached s':>10} {'exit s':>9}"
          f" {'attach x bpftrace':>17} {'exit x bpftrace':>15}")
    for size, row in results.items():
        base = summary(row["bpftrace"]) if "bpftrace" in row else None
        for tool, runs in row.items():
            s = summary(runs)
            ratios = ["", ""]
            if base and tool != "bpftrace":
                ratios = [f"{s[k] / base[k]:.3f}" if s[k] and base[k] else "-"
                          for k in ("attached_s", "exit_s")]
            print(f"{size:>11} {tool:<17} {s['probes'] or '-':>7} {fmt(s['attached_s']):>10}"
                  f" {fmt(s['exit_s'])} {ratios[0]:>17} {ratios[1]:>15}"
                  + (f"  ({s['failed']} failed)" if s["failed"] else ""))
        for tool, runs in row.items():
            for r in runs:
                if r.get("error"):
                    print(f"{size} {tool}: {r['error'].strip().splitlines()[-1:]}", file=sys.stderr)


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, options,
                          lambda opts: measure(opts.sizes, opts.repeat, opts.tools), print_table,
                          json_output="file")


if __name__ == "__main__":
    sys.exit(main())
