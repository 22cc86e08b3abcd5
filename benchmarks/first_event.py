"""Time to first event as a user sees it, peak RSS and SIGINT to exit: pybpf (warm and cold cache),
bpftrace and libbpf-tools' C tools, side by side, one repetition of each in turn.

A ticker process (benchmarks.common, C) causes an event every 2 ms, started before the tracer. The
tracer runs on a pseudo-terminal (a C tool's stdout is line-buffered there, as in a user's terminal);
a small C parent times exec to the first output line that shows a ticker event, then sends SIGINT and
times the exit, and reads peak RSS from wait4's rusage. Scripts:

    opensnoop   examples/opensnoop.pbt (bpftrace's opensnoop.bt) for both tracers; /usr/sbin/opensnoop
    execsnoop   a printf per sys_enter_execve for both tracers; /usr/sbin/execsnoop
    count       `@[comm] = count(); exit();` on the ticker's openat: the map printed at exit is the
                first output. No C tool prints a per-comm count on its first event: no C column.

pybpf cold starts with an empty cache folder (compiled objects, BTF index, parser tables: a fresh
XDG_CACHE_HOME each run); warm reuses one that a first run filled. `--baseline-python PATH` (the
python of another checkout's venv, e.g. main's) adds that pybpf, warm, to the turns: a before/after
comparison in the same minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks.common import LOOP_COMM, loop_binary, median

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
EXECSNOOP = ('tracepoint:syscalls:sys_enter_execve '
             '{ printf("%-7d %-16s %s\\n", pid, comm, str(args->filename)); }')
COUNT = ('tracepoint:syscalls:sys_enter_openat /comm == "' + LOOP_COMM + '"/ '
         '{ @[comm] = count(); exit(); }')
VARIANTS = ("pybpf warm", "pybpf cold", "baseline warm", "bpftrace", "C")
TIMEOUT_MS = 60_000


def _scripts(marker_path: str) -> dict[str, dict]:
    """name -> the ticker's arguments, the output marker, each tool's script, the C tool or None."""
    return {
        "opensnoop": {"tick": ["tick-open", marker_path], "marker": marker_path,
                      "file": os.path.join(EXAMPLES, "opensnoop.pbt"), "c": "/usr/sbin/opensnoop"},
        "execsnoop": {"tick": ["tick-exec"], "marker": LOOP_COMM, "program": EXECSNOOP,
                      "c": "/usr/sbin/execsnoop"},
        "count": {"tick": ["tick-open", marker_path], "marker": f"@[{LOOP_COMM}]", "program": COUNT,
                  "c": None, "exits_itself": True},
    }


def _command(variant: str, script: dict, baseline: str | None = None) -> list[str] | None:
    if variant == "baseline warm":
        return [baseline, "-m", "pybpf.cli", *_source(script)] if baseline else None
    if variant == "C":
        return [script["c"]] if script["c"] and os.access(script["c"], os.X_OK) else None
    if variant == "bpftrace":
        return ["bpftrace", *_source(script)] if shutil.which("bpftrace") else None
    return [sys.executable, "-m", "pybpf.cli", *_source(script)]


def _source(script: dict) -> list[str]:
    return [script["file"]] if "file" in script else ["-e", script["program"]]


def _run(cmd: list[str], marker: str, env) -> dict | None:
    # from /: `python -m` puts the working folder first on sys.path, where another checkout may be
    out = subprocess.run([loop_binary(), "first", marker, str(TIMEOUT_MS), *cmd],
                         capture_output=True, text=True, env=env, check=True, cwd="/")
    first_ns, exit_ns, rss_kib = (int(v) for v in out.stdout.split())
    if first_ns < 0:
        print(f"warning: no event from {' '.join(cmd)} in {TIMEOUT_MS} ms", file=sys.stderr)
        return None
    return {"first_s": first_ns / 1e9, "exit_s": exit_ns / 1e9, "rss_kib": rss_kib}


def _summary(runs: list[dict | None]) -> dict:
    done = [r for r in runs if r]
    return {"first_s": median([r["first_s"] for r in done]),
            "first_min_s": min((r["first_s"] for r in done), default=None),
            "exit_s": median([r["exit_s"] for r in done]),
            "rss_kib": median([r["rss_kib"] for r in done]), "runs": runs}


def measure(repeat: int, names=None, baseline: str | None = None) -> dict:
    from benchmarks.startup import byte_compile_pybpf

    byte_compile_pybpf()
    folder = tempfile.mkdtemp(prefix="pybpf-bench-first-")
    marker_path = os.path.join(folder, "first-event-marker")
    open(marker_path, "w").close()
    warm_cache, cold_cache = os.path.join(folder, "warm-cache"), os.path.join(folder, "cold-cache")
    results = {}
    try:
        for name, script in _scripts(marker_path).items():
            if names is not None and name not in names:
                continue
            ticker = subprocess.Popen([loop_binary(), *script["tick"]])
            try:
                commands = {v: _command(v, script, baseline) for v in VARIANTS}
                runs = {v: [] for v in VARIANTS if commands[v]}
                for variant in ("pybpf warm", "baseline warm"):
                    if commands[variant]:
                        _run(commands[variant], script["marker"], dict(os.environ, XDG_CACHE_HOME=warm_cache))
                for _ in range(repeat):
                    for variant in runs:
                        env = None
                        if variant != "bpftrace" and variant != "C":
                            cache = cold_cache if variant == "pybpf cold" else warm_cache
                            if variant == "pybpf cold":
                                shutil.rmtree(cold_cache, ignore_errors=True)
                            env = dict(os.environ, XDG_CACHE_HOME=cache)
                        runs[variant].append(_run(commands[variant], script["marker"], env))
            finally:
                ticker.kill()
                ticker.wait()
            results[name] = {v: _summary(r) for v, r in runs.items()}
            results[name]["commands"] = {v: c for v, c in commands.items() if c}
            results[name]["exits_itself"] = script.get("exits_itself", False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def rows(results: dict) -> list[tuple]:
    """(label, pybpf, bpftrace, unit, C) rows for the table."""
    out = []
    for name, row in results.items():
        theirs, c = row.get("bpftrace") or {}, row.get("C") or {}
        for key, label, scale, unit in (("first_s", "first event", 1, "s"),
                                        ("first_min_s", "first event min", 1, "s"),
                                        ("exit_s", "SIGINT to exit", 1, "s"),
                                        ("rss_kib", "peak RSS", 1 / 1024, "MiB")):
            if key == "exit_s" and row["exits_itself"]:
                continue
            def value(r):
                return r[key] * scale if r.get(key) is not None else None
            for phase in ("pybpf warm", "pybpf cold", "baseline warm"):
                if phase in row:
                    out.append((f"{name} {label}, {phase}", value(row[phase]), value(theirs), unit, value(c)))
    return out
