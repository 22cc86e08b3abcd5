"""biolatency: block device I/O latency as a power-of-two histogram, with BCC's options and its
histogram format (`usecs : count distribution`, 40 stars).

    pybpf-biolatency -m 1 5            # milliseconds, a histogram a second, five times
    python -m pybpf.tools.biolatency -D

Latency is from the request's issue to the device to its completion. The maps only grow: an
interval's histogram is the difference between two readings.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence

import pybpf

EXAMPLES = """examples:
    ./biolatency            # summarize block I/O latency as a histogram
    ./biolatency 1 10       # print 1 second summaries, 10 times
    ./biolatency -mT 1      # 1s summaries, milliseconds, and timestamps
    ./biolatency -D         # show each disk device separately
"""
STARS = 40
FOREVER = 99999999          # BCC's default interval and count


def parser() -> argparse.ArgumentParser:
    """The command line, as BCC's biolatency."""
    p = argparse.ArgumentParser(prog="biolatency", description="Summarize block device I/O "
                                "latency as a histogram",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=EXAMPLES)
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    p.add_argument("-D", "--disks", action="store_true", help="print a histogram per disk device")
    p.add_argument("interval", nargs="?", type=int, default=FOREVER, help="output interval, in seconds")
    p.add_argument("count", nargs="?", type=int, default=FOREVER, help="number of outputs")
    return p


def program(opts: argparse.Namespace) -> str:
    """The program: a hist of latencies, per device number with -D."""
    key = "[args->dev]" if opts.disks else ""
    unit = 1000000 if opts.milliseconds else 1000
    return f"""
tracepoint:block:block_rq_issue {{ @start[args->dev, args->sector] = nsecs; }}
tracepoint:block:block_rq_complete /@start[args->dev, args->sector]/
{{
    @latency{key} = hist((nsecs - @start[args->dev, args->sector]) / {unit});
    delete(@start[args->dev, args->sector]);
}}
END {{ clear(@start); }}
"""


def log2_hist_text(counts: Mapping[int, int], label: str) -> str:
    """BCC's print_log2_hist of pybpf's hist buckets (1: zero, 2: one, i: [2^(i-2), 2^(i-1))),
    as BCC numbers its slots (0: zero, 1: one, k: [2^(k-1), 2^k - 1]). Slot 0, the zeros, is not
    printed, as in BCC."""
    slots = {index - 1: n for index, n in counts.items() if index >= 1 and n}
    if not slots or max(slots) < 1:
        return ""
    last, top = max(slots), max(slots.values())
    wide = last > 32
    stars = STARS // 2 if wide else STARS
    lines = [(f"               {label:<29} : count     distribution" if wide
              else f"     {label:<19} : count     distribution")]
    for slot in range(1, last + 1):
        low, high = (1 << slot) >> 1, (1 << slot) - 1
        if low == high:
            low -= 1
        n = slots.get(slot, 0)
        bar = "*" * (stars * n // top)
        cols = (f"{low:>20} -> {high:<20}" if wide else f"{low:>10} -> {high:<10}")
        lines.append(f"{cols} : {n:<8} |{bar:<{stars}}|")
    return "\n".join(lines) + "\n"


def disk_name(dev: int) -> str:
    """A device number (the kernel's dev_t: major << 20 | minor) -> its name, 'vda'."""
    major, minor = dev >> 20, dev & 0xFFFFF
    try:
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return f"{major},{minor}"


class Printer:
    """The histograms of what completed since the last reading."""

    def __init__(self, opts: argparse.Namespace):
        self.opts = opts
        self.seen: dict[pybpf.api.Key, dict[int, int]] = {}

    def text(self, latency: Mapping[pybpf.api.Key, pybpf.api.Value]) -> str:
        """One output: a blank line, the time with -T, then the histogram(s)."""
        label = "msecs" if self.opts.milliseconds else "usecs"
        out = ["\n" + (f"{time.strftime('%H:%M:%S'):<8}\n" if self.opts.timestamp else "")]
        for key in sorted(latency, key=str):
            hist = latency[key]
            assert isinstance(hist, pybpf.Histogram)
            before = self.seen.get(key, {})
            new = {i: n - before.get(i, 0) for i, n in hist.counts.items()}
            self.seen[key] = dict(hist.counts)
            if self.opts.disks:
                assert isinstance(key, int)
                out.append(f"\ndisk = {disk_name(key)}\n")
            out.append(log2_hist_text(new, label))
        return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run biolatency with `argv` (default: the command line's); -> the exit status."""
    opts = parser().parse_args(argv)
    printer = Printer(opts)
    try:
        trace = pybpf.compile(program(opts)).run()
        with trace:
            print("Tracing block device I/O... Hit Ctrl-C to end.", flush=True)
            for _ in range(opts.count):
                try:
                    trace.wait(opts.interval)
                except KeyboardInterrupt:
                    break
                print(printer.text(trace.maps["@latency"].snapshot()), end="", flush=True)
            else:
                return 0
        print(printer.text(trace.maps["@latency"].snapshot()), end="", flush=True)
    except pybpf.Error as e:
        print(e.render(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
