"""In-kernel cost per event: run_time_ns / run_cnt of the tracer's program (kernel.bpf_stats_enabled=1).

Each script is attached by each tool, output to /dev/null; a syscall loop (benchmarks.common) fires
the tracepoint; the cost is the change in run_time_ns over the change in run_cnt across that loop only
(the events that showed the program was attached are left out). Each measurement is repeated and the
median kept. The empty program on the same tracepoint is the floor: what the kernel's own dispatch and
bpf_stats bookkeeping cost whatever the program does. "Above floor" is the script's cost minus its
tool's floor: the part the generated code is responsible for, which is what the ratio compares.

The "C" column is the same logic written by hand in C (benchmarks/c_reference/*.bpf.c, the map kinds
pybpf uses), built with clang -O2 for the same BPF ISA (cpu v3) at run time and loaded and attached by
a small libbpf loader (c_reference/loader.c): pybpf / C is the "equal to hand-written C" claim,
measured on every run. Skipped (no C column) where clang or libbpf's headers are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks.common import loaded_programs, median, run_loop, stop, tracer_command, wait_attached

C_REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_reference")

GETPPID = ("tracepoint:syscalls:sys_enter_getppid", ("getppid",))
OPENAT = ("tracepoint:syscalls:sys_enter_openat", ("openat", "/etc/hostname"))

# name -> (tracepoint + workload, body, floor's name, the C reference's source in c_reference/)
SCRIPTS = {
    "empty (getppid)": (GETPPID, "{ }", None, "empty_getppid"),
    "count by comm": (GETPPID, "{ @[comm] = count(); }", "empty (getppid)", "count_by_comm"),
    "sum by pid, comm": (GETPPID, "{ @[pid, comm] = sum(args->__syscall_nr); }", "empty (getppid)",
                         "sum_by_pid_comm"),
    "sum by tid": (GETPPID, "{ @[tid] = sum(args->__syscall_nr); }", "empty (getppid)", "sum_by_tid"),
    "hist": (GETPPID, "{ @ = hist(nsecs & 0xffff); }", "empty (getppid)", "hist"),
    "lhist": (GETPPID, "{ @ = lhist(nsecs & 0xff, 0, 256, 16); }", "empty (getppid)", "lhist"),
    "rejecting predicate": (GETPPID, "/pid == 1/ { @ = count(); }", "empty (getppid)", "rejecting_predicate"),
    "printf 3 args": (GETPPID, '{ printf("%d %d %s\\n", pid, tid, comm); }', "empty (getppid)", None),
    "empty (openat)": (OPENAT, "{ }", None, "empty_openat"),
    "str(filename) key": (OPENAT, "{ @[str(args->filename)] = count(); }", "empty (openat)", "str_key"),
}


def build_references(folder: str, sources) -> dict[str, list[str]] | None:
    """Compile the C references named in sources and their loader into folder: {source: loader
    command}. None (with a warning) where clang, a C compiler or libbpf's headers are missing."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not shutil.which("clang") or not cc or not os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        print("note: no clang, cc or libbpf headers: the kernel-cost C column is skipped", file=sys.stderr)
        return None
    loader = os.path.join(folder, "loader")
    # Debian keeps asm/types.h (which linux/bpf.h includes) under the multiarch folder.
    multiarch = subprocess.run([cc, "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    includes = [f"-I/usr/include/{multiarch}"] if multiarch else []
    try:
        subprocess.run([cc, "-O2", "-o", loader, os.path.join(C_REFERENCE, "loader.c"), "-lbpf"],
                       check=True)
        commands = {}
        for source in sources:
            obj = os.path.join(folder, source + ".bpf.o")
            subprocess.run(["clang", "-O2", "-g", "-mcpu=v3", "-target", "bpf", *includes, "-c",
                            os.path.join(C_REFERENCE, source + ".bpf.c"), "-o", obj], check=True)
            commands[source] = [loader, obj]
    except subprocess.CalledProcessError as e:
        print(f"note: building the C references failed ({e}): the kernel-cost C column is skipped",
              file=sys.stderr)
        return None
    return commands


def _stats(ids) -> dict[int, tuple[int, int]]:
    progs = loaded_programs()
    return {i: (progs[i].get("run_time_ns", 0), progs[i].get("run_cnt", 0)) for i in ids if i in progs}


def measure_once(command: list[str], workload: tuple, events: int) -> float | None:
    before = set(loaded_programs())
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
    chosen = {name: script for name, script in SCRIPTS.items() if names is None or name in names}
    results = {}
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-c-") as folder:
        references = build_references(folder, [s[3] for s in chosen.values() if s[3]])
        for name, ((tracepoint, workload), body, floor, source) in chosen.items():
            row = {"script": f"{tracepoint} {body}", "floor": floor}
            commands = {tool: tracer_command(tool, f"{tracepoint} {body}") for tool in tools}
            if references and source:
                commands["c"] = references[source]
            for _ in range(repeat):     # the tools in turn, so that a noisy minute hits them all
                for tool, command in commands.items():
                    row.setdefault(tool + "_runs", []).append(measure_once(command, workload, events))
            for tool in commands:
                row[tool] = median(row[tool + "_runs"])
            results[name] = row
    for row in results.values():
        floor = results.get(row["floor"]) if row["floor"] else None
        for tool in [*tools, "c"]:
            base = floor.get(tool) if floor else None
            ours = row.get(tool)
            row[tool + "_above_floor"] = ours - base if ours is not None and base is not None else None
    return results


def rows(results: dict) -> list[tuple]:
    """(label, pybpf, bpftrace, unit, C) rows for the table."""
    out = []
    for name, row in results.items():
        out.append((f"ns/event {name}", row.get("pybpf"), row.get("bpftrace"), "ns", row.get("c")))
        if row["floor"]:
            out.append(("  above floor", row.get("pybpf_above_floor"), row.get("bpftrace_above_floor"), "ns",
                        row.get("c_above_floor")))
    return out
