"""In-kernel cost per event: run_time_ns / run_cnt of the tracer's program (kernel.bpf_stats_enabled=1).

Each script is attached by each tool, output to /dev/null; a syscall loop (benchmarks.common) fires
the tracepoint; the cost is the change in run_time_ns over the change in run_cnt across that loop only
(the events that showed the program was attached are left out). Each measurement is repeated and the
median kept. The empty program on the same tracepoint is the floor: what the kernel's own dispatch and
bpf_stats bookkeeping cost whatever the program does. "Above floor" is the script's cost minus its
tool's floor: the part the generated code is responsible for, which is what the ratio compares.
"""

from __future__ import annotations

import subprocess

from benchmarks.common import loaded_programs, median, run_loop, stop, tracer_command, wait_attached

GETPPID = ("tracepoint:syscalls:sys_enter_getppid", ("getppid",))
OPENAT = ("tracepoint:syscalls:sys_enter_openat", ("openat", "/etc/hostname"))

# name -> (tracepoint + workload, body, floor's name)
SCRIPTS = {
    "empty (getppid)": (GETPPID, "{ }", None),
    "count by comm": (GETPPID, "{ @[comm] = count(); }", "empty (getppid)"),
    "sum by pid, comm": (GETPPID, "{ @[pid, comm] = sum(args->__syscall_nr); }", "empty (getppid)"),
    "hist": (GETPPID, "{ @ = hist(nsecs & 0xffff); }", "empty (getppid)"),
    "lhist": (GETPPID, "{ @ = lhist(nsecs & 0xff, 0, 256, 16); }", "empty (getppid)"),
    "rejecting predicate": (GETPPID, "/pid == 1/ { @ = count(); }", "empty (getppid)"),
    "printf 3 args": (GETPPID, '{ printf("%d %d %s\\n", pid, tid, comm); }', "empty (getppid)"),
    "empty (openat)": (OPENAT, "{ }", None),
    "str(filename) key": (OPENAT, "{ @[str(args->filename)] = count(); }", "empty (openat)"),
}


def _stats(ids) -> dict[int, tuple[int, int]]:
    progs = loaded_programs()
    return {i: (progs[i].get("run_time_ns", 0), progs[i].get("run_cnt", 0)) for i in ids if i in progs}


def measure_once(tool: str, tracepoint: str, workload: tuple, body: str, events: int) -> float | None:
    before = set(loaded_programs())
    proc = subprocess.Popen(tracer_command(tool, f"{tracepoint} {body}"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        new = wait_attached(proc, before, lambda: run_loop(workload[0], 10, *workload[1:]))
        if not new:
            return None
        first = _stats(new)
        run_loop(workload[0], events, *workload[1:])
        last = _stats(new)
        deltas = [(last[i][0] - first[i][0], last[i][1] - first[i][1]) for i in new if i in last and i in first]
        ns, cnt = max(deltas, key=lambda d: d[1])
        return ns / cnt if cnt else None
    finally:
        stop(proc, timeout=30)


def measure(tools: list[str], events: int, repeat: int, names=None) -> dict:
    results = {}
    for name, ((tracepoint, workload), body, floor) in SCRIPTS.items():
        if names is not None and name not in names:
            continue
        row = {"script": f"{tracepoint} {body}", "floor": floor}
        for tool in tools:
            runs = [measure_once(tool, tracepoint, workload, body, events) for _ in range(repeat)]
            row[tool] = median(runs)
            row[tool + "_runs"] = runs
        results[name] = row
    for row in results.values():
        floor = results.get(row["floor"]) if row["floor"] else None
        for tool in tools:
            base = floor.get(tool) if floor else None
            row[tool + "_above_floor"] = (row[tool] - base if row[tool] is not None and base is not None
                                          else None)
    return results


def rows(results: dict) -> list[tuple[str, float | None, float | None, str]]:
    out = []
    for name, row in results.items():
        out.append((f"ns/event {name}", row.get("pybpf"), row.get("bpftrace"), "ns"))
        if row["floor"]:
            out.append(("  above floor", row.get("pybpf_above_floor"), row.get("bpftrace_above_floor"), "ns"))
    return out
