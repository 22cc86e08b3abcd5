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

pybpf runs as a user runs it: the `pybpf` command of a fresh venv into which pip installed
this checkout (not editable: an editable install's finder imports pathlib and importlib.util on
every start, ~10 ms, and its cache identity stats every module; a user's `pip install pybpf` does
neither). Its dependencies (lark, llvmlite, pyelftools) come from this interpreter's environment.
pybpf cold starts with an empty cache folder (compiled objects, BTF index, parser tables: a fresh
XDG_CACHE_HOME each run); warm reuses one that a first run filled. `--baseline-ref REF` (a commit
of this repository, e.g. main) installs that tree the same way and adds it, warm and cold, to the
turns: a before/after comparison in the same minutes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks.common import LOOP_COMM, loop_binary, median

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(CHECKOUT, "examples")
EXECSNOOP = ('tracepoint:syscalls:sys_enter_execve '
             '{ printf("%-7d %-16s %s\\n", pid, comm, str(args->filename)); }')
COUNT = ('tracepoint:syscalls:sys_enter_openat /comm == "' + LOOP_COMM + '"/ '
         '{ @[comm] = count(); exit(); }')
VARIANTS = ("pybpf warm", "pybpf cold", "baseline warm", "baseline cold", "bpftrace", "C")
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


def install_pybpf(source: str, folder: str) -> str:
    """The `pybpf` command of a new venv in folder, with the tree at source pip-installed
    in it (not editable); the dependencies are this environment's, named in a .pth file."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", folder], check=True)
    python = os.path.join(folder, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dependencies = {os.path.dirname(importlib.util.find_spec(name).submodule_search_locations[0])
                    for name in ("lark", "llvmlite", "elftools")}
    with open(os.path.join(site, "pybpf-dependencies.pth"), "w") as f:
        f.write("".join(path + "\n" for path in sorted(dependencies)))
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", source], check=True)
    return os.path.join(folder, "bin", "pybpf")


def _install_baseline(ref: str, folder: str) -> str:
    """`--baseline-ref`: the tree of commit ref of this repository, installed as install_pybpf does."""
    source = os.path.join(folder, "baseline-source")
    os.mkdir(source)
    archive = subprocess.run(["git", "-C", CHECKOUT, "archive", ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", source], input=archive.stdout, check=True)
    return install_pybpf(source, os.path.join(folder, "baseline-venv"))


def _command(variant: str, script: dict, pybpf: dict[str, str]) -> list[str] | None:
    if variant.startswith("baseline"):
        return [pybpf["baseline"], *_source(script)] if "baseline" in pybpf else None
    if variant == "C":
        return [script["c"]] if script["c"] and os.access(script["c"], os.X_OK) else None
    if variant == "bpftrace":
        return ["bpftrace", *_source(script)] if shutil.which("bpftrace") else None
    return [pybpf["this"], *_source(script)]


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


def measure(repeat: int, names=None, baseline_ref: str | None = None) -> dict:
    folder = tempfile.mkdtemp(prefix="pybpf-bench-first-")
    marker_path = os.path.join(folder, "first-event-marker")
    open(marker_path, "w").close()
    warm_cache = os.path.join(folder, "warm-cache")
    results = {}
    try:
        pybpf = {"this": install_pybpf(CHECKOUT, os.path.join(folder, "venv"))}
        if baseline_ref:
            pybpf["baseline"] = _install_baseline(baseline_ref, folder)
        for name, script in _scripts(marker_path).items():
            if names is not None and name not in names:
                continue
            ticker = subprocess.Popen([loop_binary(), *script["tick"]])
            try:
                commands = {v: _command(v, script, pybpf) for v in VARIANTS}
                runs = {v: [] for v in VARIANTS if commands[v]}
                for variant in ("pybpf warm", "baseline warm"):
                    if commands[variant]:
                        _run(commands[variant], script["marker"], dict(os.environ, XDG_CACHE_HOME=warm_cache))
                for _ in range(repeat):
                    for variant in runs:
                        env = None
                        if variant != "bpftrace" and variant != "C":
                            cache = warm_cache
                            if variant.endswith(" cold"):
                                cache = os.path.join(folder, variant.replace(" ", "-") + "-cache")
                                shutil.rmtree(cache, ignore_errors=True)
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
            for phase in ("pybpf warm", "pybpf cold", "baseline warm", "baseline cold"):
                if phase in row:
                    out.append((f"{name} {label}, {phase}", value(row[phase]), value(theirs), unit, value(c)))
    return out
