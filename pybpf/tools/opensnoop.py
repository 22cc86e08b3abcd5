"""opensnoop: trace open() syscalls, with BCC's options and columns.

    pybpf-opensnoop -x -n python          # failed opens by processes named *python*
    python -m pybpf.tools.opensnoop -T -f O_WRONLY -f O_RDWR

The program is built from the options: the pid, tid and flag filters run in the kernel, the name
filter (a substring, as BCC's) in Python. Each open reaches Python as one print() tuple.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pybpf.tools import positive, snoop

EXAMPLES = """examples:
    ./opensnoop                        # trace all open() syscalls
    ./opensnoop -T                     # include timestamps
    ./opensnoop -x                     # only show failed opens
    ./opensnoop -p 181                 # only trace PID 181
    ./opensnoop -t 123                 # only trace TID 123
    ./opensnoop -d 10                  # trace for 10 seconds only
    ./opensnoop -n main                # only print process names containing "main"
    ./opensnoop -e                     # show extended fields
    ./opensnoop -f O_WRONLY -f O_RDWR  # only print calls for writing
"""
PATH_MAX = 91          # bytes of the path kept, its NUL among them (BCC: 255): what fits LLVM's BPF stack with the rest


def _flag(name: str) -> int:
    """An O_* flag by name (O_WRONLY, o_creat) -> its value."""
    upper = name.upper()
    value = getattr(os, upper, None) if upper.startswith("O_") else None
    if not isinstance(value, int):
        raise argparse.ArgumentTypeError(f"unknown open flag {name!r} (expected O_WRONLY, O_RDWR, "
                                         f"O_CREAT, ...)")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line, as BCC's opensnoop (the seed's options)."""
    p = argparse.ArgumentParser(prog="opensnoop", description="Trace open() syscalls",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-x", "--failed", action="store_true", help="only show failed opens")
    p.add_argument("-p", "--pid", type=positive, help="trace this PID only")
    p.add_argument("-t", "--tid", type=positive, help="trace this TID only")
    p.add_argument("-d", "--duration", type=positive, help="total duration of trace in seconds")
    p.add_argument("-n", "--name", help="only print process names containing this name")
    p.add_argument("-e", "--extended_fields", action="store_true", help="show extended fields")
    p.add_argument("-f", "--flag_filter", action="append", type=_flag,
                   help="filter on flags argument (e.g., O_WRONLY)")
    return p


def program(opts: argparse.Namespace) -> str:
    """The tracing program for these options ($1: the pid, $2: the tid to trace, 0 for all)."""
    enter_filters = []
    if opts.pid:
        enter_filters.append("pid == $1")
    if opts.tid:
        enter_filters.append("tid == $2")
    if opts.flag_filter:
        mask = 0
        for flag in opts.flag_filter:
            mask |= flag
        # O_RDONLY is 0: BCC's mask test cannot select it either
        enter_filters.append(f"(args->flags & {mask})")
    enter_pred = f"/{' && '.join(enter_filters)}/" if enter_filters else ""
    exit_pred = "/@path[tid] && args->ret < 0/" if opts.failed else "/@path[tid]/"
    return f"""
tracepoint:syscalls:sys_enter_open, tracepoint:syscalls:sys_enter_openat {enter_pred}
{{
    @path[tid] = args->filename;
    @flags[tid] = args->flags;
}}
tracepoint:syscalls:sys_exit_open, tracepoint:syscalls:sys_exit_openat {exit_pred}
{{
    print((nsecs, pid, tid, comm, args->ret, @flags[tid], str(@path[tid], {PATH_MAX})));
    delete(@path[tid]);
    delete(@flags[tid]);
}}
tracepoint:syscalls:sys_exit_open, tracepoint:syscalls:sys_exit_openat /@path[tid]/
{{
    delete(@path[tid]);
    delete(@flags[tid]);
}}
END {{ clear(@path); clear(@flags); }}
"""


class Printer:
    """Formats each open as BCC's opensnoop prints it."""

    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.first_ns = 0

    def header(self) -> str:
        """The column names line."""
        opts = self.opts
        return ((f"{'TIME(s)':<14}" if opts.timestamp else "")
                + f"{'TID' if opts.tid else 'PID':<6} {'COMM':<16} {'FD':>4} {'ERR':>3} "
                + (f"{'FLAGS':<9}" if opts.extended_fields else "") + "PATH")

    def row(self, event: object) -> str | None:
        """One open's line; None when the name filter leaves it out."""
        assert isinstance(event, tuple)
        ns, pid, tid, comm, ret, flags, path = event
        opts = self.opts
        if opts.name and opts.name not in comm:
            return None
        if not self.first_ns:
            self.first_ns = ns
        fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
        line: str = ((f"{(ns - self.first_ns) / 1e9:<14.9f}" if opts.timestamp else "")
                + f"{tid if opts.tid else pid:<6} {comm:<16} {fd:>4} {err:>3} "
                + (f"{flags & 0xFFFFFFFF:08o} " if opts.extended_fields else "") + path)
        return line


def main(argv: Sequence[str] | None = None) -> int:
    """Run opensnoop with `argv` (default: the command line's); -> the exit status."""
    opts = parser().parse_args(argv)
    printer = Printer(opts)
    return snoop(program(opts), [opts.pid or 0, opts.tid or 0], printer.row, printer.header(),
                 opts.duration)


if __name__ == "__main__":
    sys.exit(main())
