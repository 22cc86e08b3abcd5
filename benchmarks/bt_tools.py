"""Which bpftrace tools compile: `pybpf --dry-run FILE` for every .bt file given (or every .bt in
the folders given), each with its first error and what that error waits on.

    python benchmarks/bt_tools.py /usr/sbin/*.bt          # the tools Debian's bpftrace ships
    python benchmarks/bt_tools.py ~/bpftrace-0.26-tools   # a folder of bpftrace's tools/*.bt

Nothing is fetched: the tools are bpftrace's, read from where the caller put them. The kind of a
failure is guessed from its message: a probe this kernel lacks, a function or builtin (issue
#16), stacks (#17), or the language itself (#15).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

TIMEOUT_S = 120
# (kind, pattern over the first error line), first match wins.
KINDS = (
    ("language (#15)", re.compile(r"Unknown identifier: '[A-Z_0-9]+'|syntax error")),
    ("probe this system lacks", re.compile(r"kprobe|kretprobe|fentry|fexit|kfunc|EPERM|not found|"
                                           r"no function|not available")),
    # this kernel's own layout or symbols: a member renamed since the tool was written (runqlen's
    # cfs_rq->nr_running), a data symbol kallsyms lists only with CONFIG_KALLSYMS_ALL (loads' avenrun)
    ("this kernel's types or symbols", re.compile(r"does not contain a field named|"
                                                  r"kaddr: no kernel symbol")),
    # bpftrace 0.22+ scopes variables to their block: a 0.17 tool that sets a variable in both
    # branches of an if and reads it after fails there too (docs/language.md)
    ("0.17 scoping, refused by 0.26 too", re.compile(r"Undefined or undeclared variable")),
    ("stacks (#17)", re.compile(r"kstack|ustack|stack_mode")),
    ("function or builtin (#16)", re.compile(r"Unknown function|Unknown identifier|requires \d|"
                                             r"expects|builtin|not supported by pybpf yet")),
)


def first_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "ERROR" in line]
    return lines[0] if lines else (stderr.strip().splitlines() or ["(no message)"])[-1]


def kind_of(error: str) -> str:
    return next((kind for kind, pattern in KINDS if pattern.search(error)), "language (#15)")


def tools(paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        if os.path.isdir(path):
            found += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".bt"))
        else:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help=".bt files or folders of them")
    opts = parser.parse_args(argv)
    files = tools(opts.paths)
    failures = []
    for path in files:
        try:
            result = subprocess.run([sys.executable, "-m", "pybpf.cli", "--dry-run", path],
                                    capture_output=True, text=True, timeout=TIMEOUT_S,
                                    stdin=subprocess.DEVNULL)
            ok, error = result.returncode == 0, first_error(result.stderr)
        except subprocess.TimeoutExpired:
            ok, error = False, f"timed out after {TIMEOUT_S} s"
        if not ok:
            failures.append((os.path.basename(path), error))
    print(f"{len(files) - len(failures)} of {len(files)} compile")
    for name, error in failures:
        print(f"{name:<24} {kind_of(error):<26} {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
