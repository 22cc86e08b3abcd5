"""A wildcard over every function of a library, pybpf beside bpftrace: seconds from exec to every
probe attached, and from SIGINT to exit, for `uprobe:libc:PATTERN { @[probe] = count(); }`.

    python3 -m benchmarks.uprobe_scale                          # libc:*, table; JSON with --json
    python3 -m benchmarks.uprobe_scale --pattern 'libc:[a-o]*' --repeat 3 --tools pybpf

pybpf attaches a wildcard's uprobes of one binary through one uprobe_multi link where the kernel
has them (6.6+), else a perf event each; `--perf-events` also runs pybpf told the kernel has no
uprobe_multi (the way before it used them). With uprobe_multi, pybpf leaves out (with a warning)
the functions the kernel cannot probe; with perf events it stops at the first (libc's
pthread_spin_lock), so `libc:[a-o]*` is a pattern both can attach.
Timing as benchmarks.tracepoint_scale (BEGIN's line marks the end of attaching). Needs root.
"""

from __future__ import annotations

import os
import shutil
import sys

from benchmarks.common import benchmark_main, cold_and_warm
from benchmarks.tracepoint_scale import run_once, summary

BODY = ' { @[probe] = count(); } BEGIN { printf("attached\\n"); }'


# pybpf as the command runs it, answering that the kernel has no uprobe_multi links
WITHOUT_MULTI = ("import sys, pybpf.runtime.features as f; f.uprobe_multi_available = lambda: False; "
                 "from pybpf.cli import main; sys.exit(main())")


UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"


def remove_bcc_uprobe_events() -> None:
    """bpftrace 0.17 creates its uprobes as tracefs events named `..._bcc_PID` and leaves them there
    when an attach fails (libc's pthread_spin_lock): such an event then refuses every perf event,
    so `tracepoint:*:*` fails on the machine afterwards. Remove them."""
    if not os.path.exists(UPROBE_EVENTS):
        return
    with open(UPROBE_EVENTS) as f:
        names = [line.split()[0].split(":", 1)[1] for line in f if "_bcc_" in line]
    for name in names:
        fd = os.open(UPROBE_EVENTS, os.O_WRONLY | os.O_APPEND)     # open(.., "a") seeks: tracefs refuses
        try:
            os.write(fd, f"-:{name}\n".encode())
        finally:
            os.close(fd)


def run_bpftrace(program: str) -> dict:
    try:
        return run_once(["bpftrace"], program)
    finally:
        remove_bcc_uprobe_events()


def measure(pattern: str, repeat: int, tools, perf_events: bool = False) -> dict:
    program = f"uprobe:{pattern}" + BODY
    row: dict[str, list[dict]] = {}
    if "pybpf" in tools:
        pybpf = [sys.executable, "-m", "pybpf.cli"]
        row["pybpf cold"], row["pybpf warm"] = cold_and_warm(lambda env: run_once(pybpf, program, env),
                                                             repeat)
    if "pybpf" in tools and perf_events:
        command = [sys.executable, "-c", WITHOUT_MULTI]
        row["pybpf perf"] = cold_and_warm(lambda env: run_once(command, program, env), repeat)[1]
    if "bpftrace" in tools and shutil.which("bpftrace"):
        row["bpftrace"] = [run_bpftrace(program) for _ in range(repeat)]
    return row


def add_options(ap) -> None:
    ap.add_argument("--pattern", default="libc:*")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--tools", nargs="+", default=["pybpf", "bpftrace"])
    ap.add_argument("--perf-events", action="store_true",
                    help="also pybpf with a perf event per uprobe (warm)")


def print_table(row: dict, opts) -> None:
    print(f"{'tracer':<12} {'probes':>7} {'attached s':>10} {'exit s':>9}")
    for tool, runs in row.items():
        s = summary(runs)
        cells = [f"{s[k]:>9.2f}" if s[k] is not None else f"{'-':>9}" for k in ("attached_s", "exit_s")]
        print(f"{tool:<12} {s['probes'] or '-':>7} {cells[0]:>10} {cells[1]}"
              + (f"  ({s['failed']} failed)" if s["failed"] else ""))
        for r in runs:
            if r.get("error"):
                print(f"{tool}: {r['error'].strip().splitlines()[-1:]}", file=sys.stderr)


def main(argv=None) -> int:
    return benchmark_main(__doc__, argv, add_options,
                          lambda o: measure(o.pattern, o.repeat, o.tools, o.perf_events),
                          print_table, needs_root=True, json_output="file")


if __name__ == "__main__":
    sys.exit(main())
