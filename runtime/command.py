"""system()'s commands, run in user space when their record is read.

    run_command("/bin/echo hi")     # CommandResult(output='hi\\n', error=None)

As bpftrace 0.26 documents it: the command is forked and executed (no shell: its words are split
as a shell would split them, quotes honoured, nothing expanded), with pybpf's privileges; pybpf
waits for it and prints its standard output. bpftrace 0.17 ran it through /bin/sh (popen).
"""

from __future__ import annotations

from typing import NamedTuple


class CommandResult(NamedTuple):
    output: str
    error: str | None        # why the command could not run, or None


def run_command(text: str) -> CommandResult:
    import shlex          # here, not at the top: every run imports this module, few run a command
    import subprocess

    try:
        argv = shlex.split(text)
    except ValueError as err:
        return CommandResult("", f"system(): cannot split {text!r} into words: {err}")
    if not argv:
        return CommandResult("", "system(): empty command")
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    except OSError as err:
        return CommandResult("", f"system(): cannot run {argv[0]}: {err.strerror}")
    return CommandResult(done.stdout.decode("utf-8", errors="replace"), None)
