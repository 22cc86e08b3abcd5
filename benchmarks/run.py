"""pybpf beside bpftrace, in one run on one machine: start-up and in-kernel cost per event.

    python3 -m benchmarks.run              # table on stdout, JSON in benchmarks/results.json
    python3 -m benchmarks.run --quick      # a smoke run: fewer repetitions and events

Needs root. bpftrace columns are filled when `bpftrace` is on PATH (Debian's package); the
ratio column is pybpf / bpftrace, lower is better. Programs are found with bpftool
(bpftool is a benchmark tool here, never a pybpf dependency).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

STARTUP_SCRIPT = ("tracepoint:syscalls:sys_enter_open* { @[probe] = count(); } "
                  "BEGIN { exit(); }")
TARGET = "tracepoint:syscalls:sys_enter_getppid"
COST_SCRIPTS = {
    "empty": "{ }",
    "count by comm": "{ @[comm] = count(); }",
    "sum by pid, comm": "{ @[pid, comm] = sum(args->__syscall_nr); }",
    "hist": "{ @ = hist(nsecs & 0xffff); }",
    "lhist": "{ @ = lhist(nsecs & 0xff, 0, 256, 16); }",
    "rejecting predicate": "/pid == 1/ { @ = count(); }",
}

libc = ctypes.CDLL(None, use_errno=True)
SYS_getppid = 110


def tracer_command(tool: str, program: str, extra=()) -> list[str]:
    if tool == "pybpf":
        return [sys.executable, "-m", "pybpf.cli", *extra, "-e", program]
    return ["bpftrace", "-e", program]


def run_measured(cmd: list[str], env=None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run of cmd to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - start, usage.ru_maxrss


def startup(tool: str, repeat: int) -> dict:
    results = {}
    if tool == "pybpf":
        cache = tempfile.mkdtemp(prefix="pybpf-bench-cache-")
        env = dict(os.environ, XDG_CACHE_HOME=cache)
        cold = []
        for _ in range(repeat):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(run_measured(tracer_command(tool, STARTUP_SCRIPT), env))
        warm = [run_measured(tracer_command(tool, STARTUP_SCRIPT), env) for _ in range(repeat)]
        shutil.rmtree(cache, ignore_errors=True)
        results["cold"], results["warm"] = cold, warm
    else:
        runs = [run_measured(tracer_command(tool, STARTUP_SCRIPT)) for _ in range(repeat)]
        results["cold"] = results["warm"] = runs
    return {k: {"wall_s": min(w for w, _ in v), "rss_kib": max(r for _, r in v)}
            for k, v in results.items()}


def loaded_programs() -> dict[int, dict]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True)
    return {p["id"]: p for p in json.loads(out.stdout or "[]")}


def in_kernel_cost(tool: str, body: str, events: int) -> float | None:
    """ns per event of the program attached to TARGET, from the kernel's own statistics."""
    before = loaded_programs()
    proc = subprocess.Popen(tracer_command(tool, f"{TARGET} {body}"), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        if not proc.stdout.readline().startswith("Attaching"):
            return None
        time.sleep(0.3)
        for _ in range(events):
            libc.syscall(SYS_getppid)
        # This bpftool lists no pids: the tracer's programs are the ones that appeared.
        progs = [p for i, p in loaded_programs().items() if i not in before and p.get("run_cnt")]
        if not progs:
            return None
        p = max(progs, key=lambda p: p["run_cnt"])
        return p["run_time_ns"] / p["run_cnt"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smoke run")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results.json"))
    opts = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks need root", file=sys.stderr)
        return 1
    repeat, events = (1, 2000) if opts.quick else (5, 200_000)
    tools = ["pybpf"] + (["bpftrace"] if shutil.which("bpftrace") else [])
    stats_path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(stats_path) as f:
        stats_before = f.read().strip()
    with open(stats_path, "w") as f:
        f.write("1")
    try:
        results = {"startup": {t: startup(t, repeat) for t in tools},
                   "cost_ns": {name: {t: in_kernel_cost(t, body, events) for t in tools}
                               for name, body in COST_SCRIPTS.items()}}
    finally:
        with open(stats_path, "w") as f:
            f.write(stats_before)
    results["machine"] = {"kernel": os.uname().release, "cpus": os.cpu_count()}
    with open(opts.json, "w") as f:
        json.dump(results, f, indent=2)
    print_table(results, tools)
    return 0


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def print_table(results: dict, tools: list[str]) -> None:
    print(f"{'measure':34} {'pybpf':>12} {'bpftrace':>12} {'ratio':>7}")
    bt = "bpftrace" in tools
    for phase in ("cold", "warm"):
        for key, unit, scale in (("wall_s", "s", 1), ("rss_kib", "MiB", 1 / 1024)):
            ours = results["startup"]["pybpf"][phase][key]
            theirs = results["startup"]["bpftrace"][phase][key] if bt else None
            print(f"{'start-up ' + phase + ' ' + key.split('_')[0] + ' (' + unit + ')':34} "
                  f"{ours * scale:12.3f} {(theirs or 0) * scale:12.3f} {ratio(ours, theirs):>7}")
    for name, row in results["cost_ns"].items():
        ours, theirs = row.get("pybpf"), row.get("bpftrace")
        print(f"{'ns/event ' + name:34} {ours or 0:12.1f} {theirs or 0:12.1f} "
              f"{ratio(ours, theirs):>7}")


if __name__ == "__main__":
    sys.exit(main())
