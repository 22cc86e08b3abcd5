"""What a syscall wildcard costs the traced system: ns added to each getppid() of the syscall loop
while a tool runs a script, over the loop's untraced time (kernel.bpf_stats_enabled off, as in use).

    other syscalls   sys_enter_open* attached, the loop calls getppid: what every syscall the
                     script does not trace pays (the kernel's syscall tracepoint path, and pybpf's
                     shared program, which runs and returns at once)
    its own calls    sys_enter_getp* attached (getppid among them): the cost of a traced event

pybpf attaches a wildcard's syscalls as one program on raw sys_enter (see pybpf/resources.py); its
row "(--no-shared-syscalls)" is the one-perf-event-per-syscall way bpftrace also uses.
"""

from __future__ import annotations

import subprocess

from benchmarks.common import median, run_loop, stop, tracer_command, wait_for_line

SCRIPTS = {
    "other syscalls": "tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }",
    "its own calls": "tracepoint:syscalls:sys_enter_getp* { @[probe] = count(); }",
}
VARIANTS = {"pybpf": ("pybpf", ()), "pybpf --no-shared-syscalls": ("pybpf", ("--no-shared-syscalls",)),
            "bpftrace": ("bpftrace", ())}


def loop_ns(events: int, repeat: int) -> float:
    """ns per getppid of the loop: the best of `repeat` runs (the least disturbed)."""
    return min(run_loop("getppid", events) for _ in range(repeat)) / events * 1e9


def measure_once(tool: str, extra: tuple, script: str, events: int, repeat: int) -> float | None:
    proc = subprocess.Popen(tracer_command(tool, script, extra), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        if not wait_for_line(proc, "Attaching"):
            return None
        loop_ns(events // 10, 1)          # "Attaching" comes just before the attach: let it finish
        return loop_ns(events, repeat)
    finally:
        stop(proc)


def measure(tools: list[str], events: int, repeat: int) -> dict:
    untraced = loop_ns(events, repeat)
    results = {"untraced_ns": untraced}
    for label, (tool, extra) in VARIANTS.items():
        if tool not in tools:
            continue
        row = {}
        for name, script in SCRIPTS.items():
            runs = [measure_once(tool, extra, script, events, repeat) for _ in range(3)]
            traced = median(runs)
            row[name] = traced - untraced if traced is not None else None
        results[label] = row
    return results


def rows(results: dict) -> list[tuple[str, float | None, float | None, str]]:
    out = []
    theirs = results.get("bpftrace", {})
    for label in ("pybpf", "pybpf --no-shared-syscalls"):
        if label not in results:
            continue
        suffix = "" if label == "pybpf" else " (--no-shared-syscalls)"
        for name in SCRIPTS:
            out.append((f"ns added per syscall, {name}{suffix}", results[label][name],
                        theirs.get(name), "ns"))
    return out
