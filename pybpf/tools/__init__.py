"""BCC's tools on the pybpf library: each is `python -m pybpf.tools.NAME` and the console script
`pybpf-NAME`, with BCC's options and output columns. Each module's main(argv) is the whole tool,
and reads well as an example of the library (docs/library.md)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import pybpf


def snoop(source: str, params: Sequence[str | int], row: Callable[[object], str | None],
          header: str, duration: float | None = None) -> int:
    """Run a snooping tool's program: print its header once attached, then `row(event)` of each
    of its print() events (None: the event is filtered out) until Ctrl-C (or `duration` seconds)
    -> the exit status. A pybpf error is printed as pybpf prints it; `| head` leaving early ends
    the tool quietly."""
    def show(event: object) -> None:
        line = row(event)
        if line is not None:
            print(line, flush=True)

    try:
        prog = pybpf.compile(source, params=params)
        with prog.run(on_event=show, on_lost=_lost) as trace:
            print(header, flush=True)
            trace.wait(duration)
    except KeyboardInterrupt:
        pass
    except pybpf.Error as e:
        print(e.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:         # the reader left; the trace is released already
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def positive(text: str) -> int:
    """An option's whole number above zero (argparse's `type`)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _lost(events: int) -> None:
    print(f"Possibly lost {events} samples", file=sys.stderr, flush=True)
