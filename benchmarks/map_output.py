"""Map output: seconds from SIGINT to the tracer's exit when it holds a big map.

The workload (benchmarks.common, C) calls lseek(fd, i, SEEK_SET) for i in 0..N-1, so `args->offset`
gives N distinct keys: `@[args->offset] = count()` fills a 100,000-key map, and
`@[args->offset % 10000] = hist(args->offset)` a hist map of 10,000 keys (ten values each, in several
buckets). Maps are sized for it: pybpf --map-entries, bpftrace BPFTRACE_MAP_KEYS_MAX. The output goes to
a file; its lines are counted to check that the whole map was printed. (Filling the map from BEGIN
with a while loop was not used: bpftrace 0.17 has no while, and 100,000 iterations exceed the
verifier's budget.)
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile

from benchmarks.common import LOOP_COMM, loaded_programs, median, run_loop, stop, tracer_command, wait_attached

MAX_KEYS = 200_000
_libc = ctypes.CDLL(None)
SYS_lseek = 8


def scripts(keys: int, hist_keys: int) -> dict[str, tuple[str, int]]:
    pred = f'/comm == "{LOOP_COMM}"/'
    return {f"{keys:,}-key count map": (f"tracepoint:syscalls:sys_enter_lseek {pred} "
                                        "{ @[args->offset] = count(); }", keys),
            f"{hist_keys:,}-key hist map": (f"tracepoint:syscalls:sys_enter_lseek {pred} "
                                            f"{{ @[args->offset % {hist_keys}] = hist(args->offset); }}", keys)}


def measure_once(tool: str, script: str, events: int) -> dict | None:
    extra = ("--map-entries", str(MAX_KEYS)) if tool == "pybpf" else ()
    env = dict(os.environ, BPFTRACE_MAP_KEYS_MAX=str(MAX_KEYS))
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as folder:
        path = os.path.join(folder, "out")
        before = set(loaded_programs())
        with open(path, "w") as out:
            proc = subprocess.Popen(tracer_command(tool, script, extra), stdout=out, stderr=subprocess.STDOUT,
                                    env=env)
        try:
            if not wait_attached(proc, before, lambda: _libc.syscall(SYS_lseek, -1, 0, 0)):
                return None
            run_loop("lseek", events)
        finally:
            seconds = stop(proc)
        with open(path, errors="replace") as f:
            lines = f.read().count("\n")
    return {"exit_s": seconds, "output_lines": lines}


def measure(tools: list[str], keys: int, hist_keys: int, repeat: int) -> dict:
    results = {}
    for name, (script, events) in scripts(keys, hist_keys).items():
        row = {"script": script}
        for tool in tools:
            runs = [r for r in (measure_once(tool, script, events) for _ in range(repeat)) if r]
            row[tool] = median([r["exit_s"] for r in runs])
            row[tool + "_output_lines"] = median([r["output_lines"] for r in runs])
            row[tool + "_runs"] = runs
        results[name] = row
    return results


def rows(results: dict) -> list[tuple[str, float | None, float | None, str]]:
    return [(f"print {name} (SIGINT to exit)", row.get("pybpf"), row.get("bpftrace"), "s")
            for name, row in results.items()]
