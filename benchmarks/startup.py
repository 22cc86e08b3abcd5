"""Start-up: wall time and peak RSS of a short script that attaches and exits, cold and warm.

pybpf's cold run has an empty compile cache (a fresh XDG_CACHE_HOME); warm runs reuse it. bpftrace has
no cache: its cold and warm runs are the same measurement. Median and min of `repeat` runs each.
pybpf's modules are byte-compiled first, as an installed pybpf's are (pip compiles them; an
editable checkout run with PYTHONDONTWRITEBYTECODE=1 would recompile every module every run)."""

from __future__ import annotations

import compileall

from benchmarks.common import cold_and_warm, median, run_measured, tracer_command

STARTUP_SCRIPT = ("tracepoint:syscalls:sys_enter_open* { @[probe] = count(); } "
                  "BEGIN { exit(); }")


def _summary(runs: list[tuple[float, int]]) -> dict:
    walls = [w for w, _ in runs]
    return {"wall_s": median(walls), "wall_min_s": min(walls),
            "rss_kib": median([r for _, r in runs]), "runs": len(runs)}


def byte_compile_pybpf() -> None:
    import pybpf.backend
    import pybpf.runtime
    for package in (pybpf, pybpf.backend, pybpf.runtime):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)


def measure(tool: str, repeat: int, script: str = STARTUP_SCRIPT) -> dict:
    if tool != "pybpf":
        runs = [run_measured(tracer_command(tool, script)) for _ in range(repeat)]
        return {"cold": _summary(runs), "warm": _summary(runs)}
    byte_compile_pybpf()
    cold, warm = cold_and_warm(lambda env: run_measured(tracer_command(tool, script), env), repeat)
    return {"cold": _summary(cold), "warm": _summary(warm)}


def rows(results: dict) -> list[tuple[str, float | None, float | None, str]]:
    """(label, pybpf, bpftrace, unit) rows for the table."""
    out = []
    ours, theirs = results.get("pybpf", {}), results.get("bpftrace")
    for phase in ("cold", "warm"):
        for key, label, scale, unit in (("wall_s", "wall median", 1, "s"), ("wall_min_s", "wall min", 1, "s"),
                                        ("rss_kib", "peak RSS", 1 / 1024, "MiB")):
            a = ours[phase][key] * scale
            b = theirs[phase][key] * scale if theirs else None
            out.append((f"start-up {phase} {label}", a, b, unit))
    return out
