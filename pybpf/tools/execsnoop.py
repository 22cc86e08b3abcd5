"""execsnoop: trace new programs (execve), with BCC's options and columns.

    pybpf-execsnoop -x -n python        # execs by *python* (a regex), failed ones too
    python -m pybpf.tools.execsnoop -T -U --max-args 5

As BCC's: at execve's entry the path and then each argument reach Python as print() tuples; at
its exit a last tuple carries the result, the parent and the (new) name, and the row is printed.
The uid and parent filters run in the kernel; -x, -n and -l in Python, as BCC's.
"""

from __future__ import annotations

import argparse
import pwd
import re
import sys
import time
from collections.abc import Sequence

from pybpf.tools import snoop

EXAMPLES = """examples:
    ./execsnoop                      # trace all exec() syscalls
    ./execsnoop -x                   # include failed exec()s
    ./execsnoop -T                   # include time (HH:MM:SS)
    ./execsnoop -P 181               # only trace new processes whose parent PID is 181
    ./execsnoop -U                   # include UID
    ./execsnoop -u 1000              # only trace UID 1000
    ./execsnoop -u user              # get user UID and trace only them
    ./execsnoop -t                   # include timestamps
    ./execsnoop -q                   # add "quotemarks" around arguments
    ./execsnoop -n main              # only print command lines containing "main"
    ./execsnoop -l tpkg              # only print command where arguments contains "tpkg"
    ./execsnoop --max-args 5         # at most 5 arguments (with the path)
"""
ARGSIZE = 120           # bytes kept of each argument (BCC: 128): what fits the BPF stack with -u and -P
MAX_ARGS_LIMIT = 128    # the kernel loop's bound stays small for the verifier
PENDING_LIMIT = 4096    # processes whose exec has begun and not returned: older ones are dropped


def _uid(text: str) -> int:
    """A uid, or a user name -> its uid."""
    try:
        return int(text)
    except ValueError:
        try:
            return pwd.getpwnam(text).pw_uid
        except KeyError:
            raise argparse.ArgumentTypeError(f"{text!r} is not valid UID or user entry") from None


def _max_args(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_ARGS_LIMIT:
        raise argparse.ArgumentTypeError(f"--max-args must be from 1 to {MAX_ARGS_LIMIT}")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line, as BCC's execsnoop (without --cgroupmap and --mntnsmap, which read
    BCC's pinned maps)."""
    p = argparse.ArgumentParser(prog="execsnoop", description="Trace exec() syscalls",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EXAMPLES)
    p.add_argument("-T", "--time", action="store_true",
                   help="include time column on output (HH:MM:SS)")
    p.add_argument("-t", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    p.add_argument("-u", "--uid", type=_uid, metavar="USER", help="trace this UID only")
    p.add_argument("-q", "--quote", action="store_true",
                   help='Add quotemarks (") around arguments.')
    p.add_argument("-n", "--name", type=re.compile,
                   help="only print commands matching this name (regex), any arg")
    p.add_argument("-l", "--line", type=re.compile,
                   help="only print commands where arg contains this line (regex)")
    p.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    p.add_argument("--max-args", type=_max_args, default=20,
                   help="maximum number of arguments parsed and displayed, defaults to 20")
    p.add_argument("-P", "--ppid", type=int, help="trace this parent PID only")
    return p


def program(opts: argparse.Namespace) -> str:
    """The tracing program for these options ($1: the uid, $2: the parent pid to trace).

    Events: (pid, argument) for the path and each argument, (pid, 0) when there may be more,
    and (pid, ppid, uid, comm, result) at the exit."""
    filters = (["uid == $1"] if opts.uid is not None else []) + \
        (["curtask->real_parent->tgid == $2"] if opts.ppid is not None else [])
    pred = f"/{' && '.join(filters)}/" if filters else ""
    return f"""
tracepoint:syscalls:sys_enter_execve {pred}
{{
    $i = 0;
    while ($i < {opts.max_args}) {{
        // the path, then argv[1], argv[2]... (user pointers)
        $arg = $i == 0 ? args->filename : *(uint64 *)(args->argv + $i * 8);
        if ($arg == 0) {{ break; }}
        print((pid, str($arg, {ARGSIZE})));
        $i++;
    }}
    if ($i == {opts.max_args}) {{ print((pid, 0)); }}      // there may be more: BCC's "..."
}}
tracepoint:syscalls:sys_exit_execve {pred}
{{
    print((pid, curtask->real_parent->tgid, uid, comm, args->ret));
}}
"""


def parent_of(pid: int) -> int:
    """The parent pid from /proc, where the kernel gave none (0); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Printer:
    """Collects each exec's arguments and formats its row as BCC's execsnoop prints it."""

    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.start = time.monotonic()
        self.argv: dict[int, list[str]] = {}

    def header(self) -> str:
        """The column names line."""
        opts = self.opts
        return ((f"{'TIME':<9}" if opts.time else "") + (f"{'TIME(s)':<8}" if opts.timestamp else "")
                + (f"{'UID':<6}" if opts.print_uid else "")
                + f"{'PCOMM':<16} {'PID':<7} {'PPID':<7} {'RET':>3} ARGS")

    def event(self, event: object) -> str | None:
        """Take one event: an argument (-> None), or an exit (-> its row, None when filtered)."""
        assert isinstance(event, tuple)
        if len(event) == 2:
            pid, arg = event
            if pid not in self.argv and len(self.argv) >= PENDING_LIMIT:
                del self.argv[next(iter(self.argv))]        # its exit was lost
            self.argv.setdefault(pid, []).append(arg if isinstance(arg, str) else "...")
            return None
        pid, ppid, uid, comm, ret = event
        args = self.argv.pop(pid, [])
        opts = self.opts
        if ret != 0 and not opts.fails:
            return None
        if opts.name and not opts.name.search(comm):
            return None
        if opts.line and not opts.line.search(" ".join(args)):
            return None
        if opts.quote:
            args = ['"' + arg.replace('"', '\\"') + '"' for arg in args]
        ppid = ppid or parent_of(pid)
        return ((time.strftime("%H:%M:%S").ljust(9) if opts.time else "")
                + (f"{time.monotonic() - self.start:<8.3f}" if opts.timestamp else "")
                + (f"{uid:<6}" if opts.print_uid else "")
                + f"{comm:<16} {pid:<7} {ppid or '?':<7} {ret:>3} "
                + " ".join(args).replace("\n", "\\n"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run execsnoop with `argv` (default: the command line's); -> the exit status."""
    opts = parser().parse_args(argv)
    printer = Printer(opts)
    return snoop(program(opts), [opts.uid or 0, opts.ppid or 0], printer.event, printer.header())


if __name__ == "__main__":
    sys.exit(main())
