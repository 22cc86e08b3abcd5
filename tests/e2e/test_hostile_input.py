"""Hostile input through the real `pybpf` command: each case ends in success or one `ERROR:`
report and exit status 1, with nothing loaded; never a traceback or an "internal error"."""

import subprocess

import pytest
from e2e_helpers import PYBPF, run_pybpf

OPENAT = "tracepoint:syscalls:sys_enter_openat"


def assert_one_error(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 1 and exactly one report: 'ERROR: message', or a diagnostic with that message
    (its header, the source line, the underline)."""
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].endswith(f"ERROR: {message}"), done.stderr
    assert len(lines) in (1, 3), done.stderr


# Columns past what the line info holds ---------------------------------------------------------

def test_a_statement_past_column_65535_compiles():
    done = run_pybpf(["--no-cache", "--emit", "llvm", "-e",
                      "BEGIN { $x = 1;" + " " * 70000 + 'printf("%d\\n", $x); exit(); }'])
    assert done.returncode == 0 and "!DILocation(column: 1023, line: 1," in done.stdout, done.stderr


@pytest.mark.kernel
def test_a_verifier_rejection_past_column_1023_underlines_its_statement():
    program = OPENAT + " { $i = 0;" + " " * 70000 + "while ($i >= 0) { $i++; } }"
    done = run_pybpf(["--no-cache", "--dry-run", "-e", program])
    start = program.index("while") + 1
    header = done.stderr.splitlines()[0]
    assert header == (f"stdin:1:{start}-{len(program) - 1}: ERROR: the kernel's verifier rejected "
                      f"the program for {OPENAT}"), header[:200]
