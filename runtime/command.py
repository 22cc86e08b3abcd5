"""system()'s commands and cat()'s files, run and read in user space when their record is read.

    run_command("/bin/echo hi")     # CommandResult(output='hi\\n', error=None)
    read_file("/etc/hostname", 10240)   # CommandResult(output='vm\\n', error=None)

As bpftrace 0.26 documents it: the command is forked and executed (no shell: its words are split
as a shell would split them, quotes honoured, nothing expanded), with pybpf's privileges; pybpf
waits for it and prints its standard output. bpftrace 0.17 ran it through /bin/sh (popen).
"""

from __future__ import annotations

from pybpf.records import record


@record(frozen=True)
class CommandResult:
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


def read_file(path: str, most: int) -> CommandResult:
    """cat(): the first `most` bytes of the file the script names, read as pybpf's user (root),
    as bpftrace does: a script that may be run as root can read what root can. Opened without
    blocking (a FIFO with no writer does not stall the event loop) and never as a terminal."""
    import os

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        return CommandResult("", f"failed to open file '{path}': {err.strerror}")
    try:
        chunks, left = [], most
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as err:
        return CommandResult("", f"failed to read file '{path}': {err.strerror}")
    finally:
        os.close(fd)
    return CommandResult(b"".join(chunks).decode("utf-8", errors="replace"), None)
