"""syscount: count system calls, by syscall or by process, with BCC's options and columns.

    pybpf-syscount -p 181 -L            # PID 181's calls with the time spent in each
    python -m pybpf.tools.syscount -P -i 1

Each syscall's exit tracepoint counts it (its probe names the syscall); with -L the time from the
raw entry is summed too. The maps only grow: an interval's figures are the differences between
two readings.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import pybpf
from pybpf.tools import positive

EXAMPLES = """examples:
    ./syscount                 # count syscalls, top 10, at Ctrl-C
    ./syscount -P              # count by process instead of by syscall
    ./syscount -L              # the time spent in each syscall too
    ./syscount -p 181          # only process 181
    ./syscount -i 1            # print every second
"""
EXIT_PREFIX = "tracepoint:syscalls:sys_exit_"


def parser() -> argparse.ArgumentParser:
    """The command line, as BCC's syscount."""
    p = argparse.ArgumentParser(prog="syscount", description="Summarize syscall counts and "
                                "latencies.", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EXAMPLES)
    p.add_argument("-p", "--pid", type=positive, help="trace only this pid")
    p.add_argument("-i", "--interval", type=positive, help="print summary at this interval (seconds)")
    p.add_argument("-T", "--top", type=positive, default=10,
                   help="print only the top syscalls by count or latency")
    p.add_argument("-L", "--latency", action="store_true", help="collect syscall latency")
    p.add_argument("-P", "--process", action="store_true", help="count by process and not by syscall")
    return p


def program(opts: argparse.Namespace) -> str:
    """The counting program for these options ($1: the pid to trace)."""
    pred = "pid == $1" if opts.pid else ""
    key = "pid, comm" if opts.process else "probe"
    if not opts.latency:
        return f"tracepoint:syscalls:sys_exit_* {f'/{pred}/' if pred else ''} {{ @calls[{key}] = count(); }}"
    return f"""
tracepoint:raw_syscalls:sys_enter {f'/{pred}/' if pred else ''} {{ @start[tid] = nsecs; }}
tracepoint:syscalls:sys_exit_* /@start[tid]/
{{
    @calls[{key}] = count();
    @ns[{key}] = sum(nsecs - @start[tid]);
    delete(@start[tid]);
}}
END {{ clear(@start); }}
"""


Counts = dict[object, int]


class Printer:
    """BCC's tables, from two readings of the maps: what was counted in between."""

    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.seen_calls: Counts = {}
        self.seen_ns: Counts = {}

    def _name(self, key: object) -> str:
        if self.opts.process:
            assert isinstance(key, tuple)
            return f"{key[0]:<6d} {key[1]:<15}"
        return str(key).removeprefix(EXIT_PREFIX)

    def table(self, calls: Counts, ns: Counts) -> str:
        """The table of what was counted since the last one."""
        opts = self.opts
        new_calls = {k: v - self.seen_calls.get(k, 0) for k, v in calls.items()}
        new_ns = {k: v - self.seen_ns.get(k, 0) for k, v in ns.items()}
        self.seen_calls, self.seen_ns = calls, ns
        column = "PID    COMM" if opts.process else "SYSCALL"
        order = new_ns if opts.latency else new_calls
        top = sorted((k for k in order if new_calls.get(k)), key=lambda k: -order[k])[:opts.top]
        lines = [f"[{time.strftime('%H:%M:%S')}]"]
        if opts.latency:
            lines.append(f"{column:<22} {'COUNT':>8} {'TIME (us)':>16}")
            lines += [f"{self._name(k):<22} {new_calls[k]:>8d} {new_ns.get(k, 0) / 1e3:>16.3f}"
                      for k in top]
        else:
            lines.append(f"{column:<22} {'COUNT':>8}")
            lines += [f"{self._name(k):<22} {new_calls[k]:>8d}" for k in top]
        return "\n".join(lines) + "\n"


def _counts(trace: pybpf.Trace, name: str) -> Counts:
    if name not in trace.maps:
        return {}
    return {k: v for k, v in trace.maps[name].snapshot().items() if isinstance(v, int)}


def main(argv: Sequence[str] | None = None) -> int:
    """Run syscount with `argv` (default: the command line's); -> the exit status."""
    opts = parser().parse_args(argv)
    printer = Printer(opts)
    try:
        prog = pybpf.compile(program(opts), params=[opts.pid or 0])
        trace = prog.run()
        try:
            with trace:
                print(f"Tracing syscalls, printing top {opts.top}... Ctrl+C to quit.", flush=True)
                while True:
                    trace.wait(opts.interval)
                    print(printer.table(_counts(trace, "@calls"), _counts(trace, "@ns")), flush=True)
        except KeyboardInterrupt:
            pass
        print(printer.table(_counts(trace, "@calls"), _counts(trace, "@ns")))
        print("Detaching...", flush=True)
    except pybpf.Error as e:
        print(e.render(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
