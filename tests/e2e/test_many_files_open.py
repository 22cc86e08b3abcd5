"""pybpf inside a process that already has 2000 files open, as an embedding host may: every fd pybpf
waits on is then past 1023, where select() fails ("filedescriptor out of range in select()") and the
maps were lost. Both the library (a Session polled by its host) and the command's own loop (main())
run in a child that raised its soft RLIMIT_NOFILE and opened /dev/null 2000 times first."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

OPEN_FILES = 2000
_PREFIX = f"""
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < {OPEN_FILES} + 1000:
    print("SKIP hard limit", hard)
    sys.exit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, ({OPEN_FILES} + 1000, hard))
held = [os.open(os.devnull, os.O_RDONLY) for _ in range({OPEN_FILES})]
"""
# Events over a few polls: a printf from BEGIN and from three interval ticks, then exit().
PROGRAM = ('BEGIN { @ticks = 0; printf("begin\\n"); } interval:ms:50 { @ticks = @ticks + 1; printf("tick\\n"); '
           'if (@ticks == 3) { exit(); } }')

SESSION = _PREFIX + f"""
from pybpf.compiler import compile_source
from pybpf.runtime.output import make_output
from pybpf.runtime.session import Session
with Session(compile_source({PROGRAM!r}), make_output("text", sys.stdout)) as session:
    session.start()
    assert session.fileno() > {OPEN_FILES}, session.fileno()
    while session.poll(0.2):
        pass
    session.stop()
"""

CLI = _PREFIX + f"""
from pybpf.cli import main
sys.exit(main(["--no-cache", "-e", {PROGRAM!r}]))
"""


@pytest.mark.parametrize("script", [SESSION, CLI], ids=["session", "cli"])
def test_runs_with_2000_files_open(script):
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    if result.stdout.startswith("SKIP"):
        pytest.skip(result.stdout)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[lines.index("begin"):] == ["begin", "tick", "tick", "tick", "", "", "@ticks: 3"]
