"""profile: sample the stacks that run on the CPUs, with BCC's options and output.

    pybpf-profile -F 99 -p 181 10      # PID 181's stacks, 99 times a second, for 10 seconds
    python -m pybpf.tools.profile -f 5 > out.folded   # for flamegraph.pl or speedscope

Every CPU is sampled (profile:hz) and each sample counted by process, user stack and kernel
stack in one map, read once at the end. The stacks reach Python as pybpf.Stack values, whose
`.functions` name the frames, innermost first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pybpf

EXAMPLES = """examples:
    ./profile             # profile stack traces at 49 Hertz until Ctrl-C
    ./profile -F 99       # profile stack traces at 99 Hertz
    ./profile 5           # profile at 49 Hertz for 5 seconds only
    ./profile -f 5        # output in folded format for flame graphs
    ./profile -p 185      # only profile process with PID 185
    ./profile -L 185      # only profile thread with TID 185
    ./profile -U          # only show user space stacks (no kernel)
    ./profile -K          # only show kernel space stacks (no user)
"""
FOREVER = 99999999          # BCC's default duration
STACK_KEYS = 16384          # the counting map's entries: BCC's --stack-storage-size default


def _ids(text: str) -> list[int]:
    """'185,186' -> [185, 186]."""
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer list") from None
    if any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError("must be positive")
    return ids


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be nonzero and positive")
    return value


def parser() -> argparse.ArgumentParser:
    """The command line, as BCC's profile (without -c, -C, --cgroupmap and --mntnsmap)."""
    p = argparse.ArgumentParser(prog="profile", description="Profile CPU stack traces at a "
                                "timed interval", formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EXAMPLES)
    threads = p.add_mutually_exclusive_group()
    threads.add_argument("-p", "--pid", type=_ids,
                         help="profile process with one or more comma separated PIDs only")
    threads.add_argument("-L", "--tid", type=_ids,
                         help="profile thread with one or more comma separated TIDs only")
    stacks = p.add_mutually_exclusive_group()
    stacks.add_argument("-U", "--user-stacks-only", action="store_true",
                        help="show stacks from user space only (no kernel space stacks)")
    stacks.add_argument("-K", "--kernel-stacks-only", action="store_true",
                        help="show stacks from kernel space only (no user space stacks)")
    p.add_argument("-F", "--frequency", type=_positive, default=49,
                   help="sample frequency, Hertz (default 49)")
    p.add_argument("-d", "--delimited", action="store_true",
                   help="insert delimiter between kernel/user stacks")
    p.add_argument("-a", "--annotations", action="store_true",
                   help="add _[k] annotations to kernel frames")
    p.add_argument("-I", "--include-idle", action="store_true", help="include CPU idle stacks")
    p.add_argument("-f", "--folded", action="store_true",
                   help="output folded format, one line per stack (for flame graphs)")
    p.add_argument("--stack-storage-size", type=_positive, default=STACK_KEYS,
                   help="the number of unique stack traces that can be stored and displayed "
                   "(default %(default)s)")
    p.add_argument("duration", nargs="?", type=_positive, default=FOREVER,
                   help="duration of trace, in seconds")
    return p


def program(opts: argparse.Namespace) -> str:
    """The sampling program: @[pid, comm, ustack, kstack] = count(), without the stack that
    -U or -K leaves out."""
    filters = [] if opts.include_idle else ["tid != 0"]       # tid 0: the idle tasks
    if opts.pid:
        filters.append("(" + " || ".join(f"pid == {p}" for p in opts.pid) + ")")
    if opts.tid:
        filters.append("(" + " || ".join(f"tid == {t}" for t in opts.tid) + ")")
    pred = f"/{' && '.join(filters)}/" if filters else ""
    stacks = ["ustack"] * (not opts.kernel_stacks_only) + ["kstack"] * (not opts.user_stacks_only)
    return f"profile:hz:{opts.frequency} {pred} {{ @[pid, comm, {', '.join(stacks)}] = count(); }}"


def header(opts: argparse.Namespace) -> str:
    """BCC's first line (not printed with -f)."""
    threads = (f"PID {opts.pid}" if opts.pid else f"TID {opts.tid}" if opts.tid
               else "all threads")
    stacks = ("user" if opts.user_stacks_only else "kernel" if opts.kernel_stacks_only
              else "user + kernel")
    end = f" for {opts.duration} secs." if opts.duration < FOREVER else "... Hit Ctrl-C to end."
    return f"Sampling at {opts.frequency} Hertz of {threads} by {stacks} stack{end}"


class Sample:
    """One counted key: the process, its user and kernel frames (innermost first), the count."""

    def __init__(self, key: pybpf.api.Key, count: pybpf.api.Value, opts: argparse.Namespace):
        assert isinstance(key, tuple) and isinstance(count, int)
        pid, comm, *stacks = key
        assert isinstance(pid, int) and isinstance(comm, str)
        self.pid, self.comm, self.count = pid, comm, count
        user = stacks.pop(0) if not opts.kernel_stacks_only else None
        kernel = stacks.pop(0) if not opts.user_stacks_only else None
        self.user = self._functions(user)
        suffix = "_[k]" if opts.annotations else ""
        self.kernel = [name + suffix for name in self._functions(kernel)]

    @staticmethod
    def _functions(stack: object) -> list[str]:
        if stack is None:
            return []
        assert isinstance(stack, pybpf.Stack)
        return list(stack.functions)


def report(samples: list[Sample], opts: argparse.Namespace) -> str:
    """The stacks, least sampled first, as BCC prints them: folded lines with -f, else each
    stack's frames (kernel ones first, innermost first), `-  comm (pid)`, the count."""
    delimit = opts.delimited and not (opts.user_stacks_only or opts.kernel_stacks_only)
    if opts.folded:
        lines: dict[str, int] = {}
        for s in samples:
            frames = [s.comm] + s.user[::-1]
            if delimit and s.user and s.kernel:
                frames.append("-")
            line = ";".join(frames + s.kernel[::-1])
            lines[line] = lines.get(line, 0) + s.count      # one line per stack: pids summed
        return "".join(f"{line} {n}\n" for line, n in sorted(lines.items(), key=lambda i: i[1]))
    out = []
    for s in sorted(samples, key=lambda s: s.count):
        out += [f"    {name}\n" for name in s.kernel]
        if delimit and s.user and s.kernel:
            out.append("    --\n")
        out += [f"    {name}\n" for name in s.user]
        out.append(f"    {'-':<16} {s.comm} ({s.pid})\n        {s.count}\n\n")
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run profile with `argv` (default: the command line's); -> the exit status."""
    opts = parser().parse_args(argv)
    options = pybpf.CompileOptions(map_entries=opts.stack_storage_size)
    try:
        trace = pybpf.compile(program(opts), options=options).run()
        with trace:
            if not opts.folded:
                print(header(opts), flush=True)
            try:
                trace.wait(opts.duration)
            except KeyboardInterrupt:
                pass                # as BCC's: Ctrl-C ends the sampling, the report follows
        if not opts.folded:
            print()
        counts = trace.maps["@"].snapshot()
        sys.stdout.write(report([Sample(k, v, opts) for k, v in counts.items()], opts))
        sys.stdout.flush()
    except pybpf.Error as e:
        print(e.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
