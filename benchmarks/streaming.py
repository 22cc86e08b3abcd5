"""Event streaming: a million printf events from a syscall loop, through each tool to a file.

The workload (benchmarks.common, C) calls getppid N times; the script prints three values per call,
filtered on the workload's comm. Reported per tool: events delivered (printf lines in the output),
events lost (the tool's own `Lost N events` line), delivered per second (delivered events over the
time from the loop's start to the last byte of output), and the slowdown of the traced loop: its
time with the tracer attached over its median time untraced.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import tempfile
import time

from benchmarks.common import LOOP_COMM, loaded_programs, median, run_loop, stop, tracer_command, wait_attached

SCRIPT = ('tracepoint:syscalls:sys_enter_getppid /comm == "' + LOOP_COMM + '"/ '
          '{ printf("%d %d %s\\n", pid, tid, comm); }')
_LOST = re.compile(r"Lost (\d+) events")
_libc = ctypes.CDLL(None)
SYS_getppid = 110


def _settle(path: str, quiet_s: float = 1.0, timeout: float = 120) -> float:
    """Wait until the file stops growing; the monotonic time of its last growth."""
    size, changed = -1, time.monotonic()
    deadline = changed + timeout
    while time.monotonic() < deadline:
        now_size = os.path.getsize(path)
        if now_size != size:
            size, changed = now_size, time.monotonic()
        elif time.monotonic() - changed > quiet_s:
            break
        time.sleep(0.05)
    return changed


def measure_once(tool: str, events: int, extra=()) -> dict | None:
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as folder:
        path = os.path.join(folder, "out")
        before = set(loaded_programs())
        with open(path, "w") as out:
            proc = subprocess.Popen(tracer_command(tool, SCRIPT, extra), stdout=out, stderr=subprocess.STDOUT)
        try:
            if not wait_attached(proc, before, lambda: _libc.syscall(SYS_getppid)):
                return None
            start = time.monotonic()
            traced = run_loop("getppid", events)
            last = _settle(path)
        finally:
            stop(proc)
        with open(path, errors="replace") as f:
            text = f.read()
    delivered = sum(1 for line in text.splitlines() if line.endswith(" " + LOOP_COMM))
    lost = sum(int(n) for n in _LOST.findall(text))
    return {"delivered": delivered, "lost": lost, "traced_loop_s": traced,
            "delivered_per_s": delivered / max(last - start, 1e-9)}


def measure(tools: list[str], events: int, repeat: int, big_buffer: str | None = "64M") -> dict:
    untraced = median([run_loop("getppid", events) for _ in range(5)])
    results = {"events": events, "untraced_loop_s": untraced}
    variants = [(t, t, ()) for t in tools]
    if big_buffer:
        variants.append((f"pybpf --ringbuf-size {big_buffer}", "pybpf", ("--ringbuf-size", big_buffer)))
    for name, tool, extra in variants:
        runs = [r for r in (measure_once(tool, events, extra) for _ in range(repeat)) if r]
        if not runs:
            results[name] = None
            continue
        row = {k: median([r[k] for r in runs]) for k in runs[0]}
        row["slowdown"] = row["traced_loop_s"] / untraced
        row["runs"] = runs
        results[name] = row
    return results


def rows(results: dict) -> list[tuple[str, float | None, float | None, str]]:
    ours, theirs = results.get("pybpf") or {}, results.get("bpftrace") or {}
    out = [(f"stream {results['events']:,} printf: delivered", ours.get("delivered"), theirs.get("delivered"), ""),
           ("stream: lost", ours.get("lost"), theirs.get("lost"), ""),
           ("stream: delivered per second", ours.get("delivered_per_s"), theirs.get("delivered_per_s"), "/s"),
           ("stream: traced loop slowdown", ours.get("slowdown"), theirs.get("slowdown"), "x")]
    for name, row in results.items():
        if name.startswith("pybpf --ringbuf-size") and row:
            out += [(f"stream ({name}): delivered", row["delivered"], None, ""),
                    (f"stream ({name}): lost", row["lost"], None, ""),
                    (f"stream ({name}): per second", row["delivered_per_s"], None, "/s"),
                    (f"stream ({name}): slowdown", row["slowdown"], None, "x")]
    return out
