"""Compile time by stage for a large generated script (pybpf only), and both tools' start-up on it.

The script: PROBES syscall tracepoints, each with a count, a sum, a hist keyed map, a predicate and a
printf, plus `BEGIN { exit(); }`. pybpf's stages come from pybpf.compiler.StageTimes, measured in a
fresh interpreter (imports of Lark and llvmlite fall in the first stage that needs them, as for a
user's cold run); `elf` is the compiler's one parse of its ELF, `load` BPF_MAP_CREATE/BPF_PROG_LOAD
of every program (the verifier), without attaching. bpftrace prints no breakdown: its whole start-up on the same script
(attach included) is given for context, next to pybpf's cold and warm start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks import startup
from benchmarks.common import median

PROBES = 50

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from pybpf.compiler import CompileOptions, StageTimes, compile_source
times = StageTimes()
t1 = time.perf_counter()
compiled = compile_source(sys.stdin.read(), "bench.pbt", CompileOptions(), times)
t2 = time.perf_counter()
from pybpf.runtime.loader import load
t3 = time.perf_counter()
loaded = load(compiled.object, compiled)
t4 = time.perf_counter()
loaded.close()
out = dict(times.seconds)
out.update(import_driver=t1 - t0, compile_total=t2 - t1, load=t4 - t3, programs=len(compiled.programs),
           elf_bytes=len(compiled.elf))
print(json.dumps(out))
"""


def large_script(probes: int = PROBES) -> str:
    names = sorted(n for n in os.listdir("/sys/kernel/tracing/events/syscalls") if n.startswith("sys_enter_"))
    parts = []
    for i, name in enumerate(names[:probes]):
        parts.append(f"tracepoint:syscalls:{name} /pid != {i + 1}/ {{\n"
                     f"  @calls_{i}[comm] = count();\n"
                     f"  @nr_{i}[pid, comm] = sum(args->__syscall_nr);\n"
                     f"  @lat_{i}[cpu] = hist(nsecs & 0xfffff);\n"
                     f'  printf("{name} %d %s %d\\n", pid, comm, args->__syscall_nr);\n'
                     f"}}\n")
    parts.append("BEGIN { exit(); }\n")
    return "".join(parts)


def measure(tools: list[str], repeat: int, probes: int = PROBES) -> dict:
    script = large_script(probes)
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _CHILD], input=script, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"compiling the large script failed:\n{out.stderr}")
        runs.append(json.loads(out.stdout))
    stages = {k: median([r[k] for r in runs]) for k in runs[0]}
    results = {"probes": probes, "script_lines": script.count("\n"), "pybpf_stages": stages,
               "startup": {tool: startup.measure(tool, repeat, script) for tool in tools}}
    return results


STAGE_ORDER = ("parse", "probes", "check", "layout", "lower", "llvm", "elf", "load")


def rows(results: dict) -> list[tuple[str, float | None, float | None, str]]:
    stages = results["pybpf_stages"]
    n = results["probes"]
    out = [(f"compile {n} probes: {stage}", stages.get(stage), None, "s") for stage in STAGE_ORDER]
    out.append((f"compile {n} probes: compile total", stages["compile_total"], None, "s"))
    su = results["startup"]
    bt = su.get("bpftrace")
    for phase in ("cold", "warm"):
        out.append((f"start-up {n} probes {phase} wall", su["pybpf"][phase]["wall_s"],
                    bt[phase]["wall_s"] if bt else None, "s"))
    out.append((f"start-up {n} probes peak RSS", su["pybpf"]["cold"]["rss_kib"] / 1024,
                bt["cold"]["rss_kib"] / 1024 if bt else None, "MiB"))
    return out
