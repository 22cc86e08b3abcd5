"""pybpf's syscount (pybpf.tools.syscount) against calls the test causes: one test per option."""

import re
import subprocess
import sys
import time

import pytest

from e2e_helpers import Running, named_child

TOOL = [sys.executable, "-m", "pybpf.tools.syscount"]
COMM = "pybpfcounted"
# waits for a line on stdin (its pid is known before it calls), then 300 getppid()
CALLS = "sys.stdin.readline()\nimport os\nfor _ in range(300): os.getppid()\n"


def count(*options):
    """Run syscount with `options` while the child makes its calls -> (child pid, all output)."""
    child = subprocess.Popen(named_child(COMM, CALLS), stdin=subprocess.PIPE)
    args = [a.replace("{pid}", str(child.pid)) for a in options]
    run = Running(args, command=TOOL)
    run.wait_for("Ctrl+C to quit")
    child.communicate(b"go\n", timeout=30)
    time.sleep(0.1)
    out, err, code = run.stop()
    assert code == 0, err
    assert out.endswith("\nDetaching...\n")
    return child.pid, out


def test_help_names_the_options():
    result = subprocess.run(TOOL + ["-h"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("-p PID, --pid PID", "-i INTERVAL, --interval INTERVAL", "-L, --latency",
                   "-P, --process", "-T TOP, --top TOP"):
        assert option in result.stdout


@pytest.mark.kernel
def test_p_counts_that_process_by_syscall():
    pid, out = count("-p", "{pid}")
    assert re.search(r"^SYSCALL {16} +COUNT$", out, re.M)
    assert int(re.search(r"^getppid +(\d+)$", out, re.M)[1]) >= 300


@pytest.mark.kernel
def test_P_counts_by_process():
    pid, out = count("-P", "-p", "{pid}")
    assert re.search(r"^PID    COMM {11} +COUNT$", out, re.M)
    assert int(re.search(rf"^{pid} +{COMM} +(\d+)$", out, re.M)[1]) >= 300


@pytest.mark.kernel
def test_L_adds_the_time_spent():
    pid, out = count("-L", "-p", "{pid}")
    assert re.search(r"^SYSCALL {16} +COUNT +TIME \(us\)$", out, re.M)
    assert re.search(r"^getppid +([3-9]\d\d|\d{4,}) +\d+\.\d{3}$", out, re.M)


@pytest.mark.kernel
def test_i_prints_every_interval_what_it_counted_since_the_last():
    run = Running(["-i", "1"], command=TOOL)
    run.wait_for("Ctrl+C to quit")
    run.wait_for("SYSCALL")
    run.wait_for("SYSCALL", timeout=5)        # a second table, a second later
    out, err, code = run.stop()
    assert code == 0, err
    assert len(re.findall(r"^\[\d\d:\d\d:\d\d\]$", out, re.M)) >= 3
