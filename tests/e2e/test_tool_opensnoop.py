"""pybpf's opensnoop (pybpf.tools.opensnoop) against opens the test causes: every option of the
seed's usage, each by the rows it keeps and the ones it leaves out."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from e2e_helpers import Running, bcc_tool, named_child

TOOL = [sys.executable, "-m", "pybpf.tools.opensnoop"]
COMM = "pybpfsnooped"
MISSING = "/pybpf-opensnoop-no-such-file"
# The child waits for a line on stdin, so that its pid is known (for -p, -t) before it opens.
OPENS = ("sys.stdin.readline()\n"
         "import os\n"
         "open('/etc/hostname').close()\n"
         "try: open('" + MISSING + "')\nexcept OSError: pass\n"
         "os.close(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o600))\n"
         "os.close(os.open(sys.argv[2], os.O_RDWR))\n")
SEED_USAGE = ("usage: opensnoop [-h] [-T] [-x] [-p PID] [-t TID] [-d DURATION] [-n NAME]\n"
              "                 [-e] [-f FLAG_FILTER]\n")


def snoop(tmp_path, *options):
    """Run opensnoop with `options` while the child opens its files -> (child pid, the rows)."""
    written = str(tmp_path / "written")
    run = Running(list(options), command=TOOL)
    run.wait_for("PATH")                     # the header: printed once attached
    child = subprocess.Popen(named_child(COMM, OPENS, written), stdin=subprocess.PIPE)
    child.communicate(b"go\n", timeout=30)
    assert child.returncode == 0
    time.sleep(0.1)                          # the events reach the tool
    out, err, code = run.stop()
    assert code == 0, err
    return child.pid, written, out.splitlines()


def rows_of(lines, pid):
    """The rows of the child once named (before, the interpreter opens its libraries)."""
    return [line for line in lines if re.match(rf"^(\d+\.\d+ +)?{pid} +{COMM} ", line)]


def test_help_prints_the_seeds_options():
    result = subprocess.run(TOOL + ["-h"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "78"})
    assert result.returncode == 0
    assert result.stdout.startswith(SEED_USAGE + "\nTrace open() syscalls\n")
    for option in ("-T, --timestamp", "-x, --failed", "-p PID, --pid PID", "-t TID, --tid TID",
                   "-d DURATION, --duration DURATION", "-n NAME, --name NAME",
                   "-e, --extended_fields", "-f FLAG_FILTER, --flag_filter FLAG_FILTER",
                   "./opensnoop -f O_WRONLY -f O_RDWR"):
        assert option in result.stdout


def test_an_unknown_flag_is_refused_by_name():
    result = subprocess.run(TOOL + ["-f", "O_NOPE"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown open flag 'O_NOPE'" in result.stderr


@pytest.mark.kernel
def test_default_shows_pid_comm_fd_err_and_path(tmp_path):
    pid, written, lines = snoop(tmp_path)
    assert lines[0].split() == ["PID", "COMM", "FD", "ERR", "PATH"]
    rows = rows_of(lines, pid)
    assert re.search(rf"^{pid:<6} {COMM:<16} +\d+ +0 /etc/hostname$", "\n".join(rows), re.M)
    assert f"{pid:<6} {COMM:<16}   -1   2 {MISSING}" in rows


@pytest.mark.kernel
def test_T_adds_seconds_since_the_first_event(tmp_path):
    pid, written, lines = snoop(tmp_path, "-T")
    assert lines[0].startswith("TIME(s)       PID ")
    rows = rows_of(lines, pid)
    assert rows and all(re.match(r"^\d+\.\d{9} +\d+ ", row) for row in rows)


@pytest.mark.kernel
def test_x_shows_only_failed_opens(tmp_path):
    pid, written, lines = snoop(tmp_path, "-x")
    assert rows_of(lines, pid) == [f"{pid:<6} {COMM:<16}   -1   2 {MISSING}"]
    assert all(re.search(r" -1 +\d+ ", line) for line in lines[1:])


@pytest.mark.kernel
@pytest.mark.parametrize("option", ["-p", "-t"])
def test_p_and_t_trace_only_that_process(tmp_path, option):
    written = str(tmp_path / "written")
    child = subprocess.Popen(named_child(COMM, OPENS, written), stdin=subprocess.PIPE)
    run = Running([option, str(child.pid)], command=TOOL)
    header = run.wait_for("PATH")
    assert header.split()[0] == ("TID" if option == "-t" else "PID")
    child.communicate(b"go\n", timeout=30)
    time.sleep(0.1)
    out, err, code = run.stop()
    assert code == 0, err
    rows = out.splitlines()[1:]
    assert len(rows) >= 4 and all(row.startswith(f"{child.pid:<6} {COMM}") for row in rows)


@pytest.mark.kernel
def test_d_exits_after_the_duration():
    start = time.monotonic()
    result = subprocess.run(TOOL + ["-d", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PID ")
    assert time.monotonic() - start >= 1


@pytest.mark.kernel
def test_n_shows_only_names_containing_it(tmp_path):
    pid, written, lines = snoop(tmp_path, "-n", "snooped")
    assert len(rows_of(lines, pid)) >= 4
    assert all(" pybpfsnooped " in line for line in lines[1:])


@pytest.mark.kernel
def test_e_adds_the_flags_in_octal(tmp_path):
    pid, written, lines = snoop(tmp_path, "-e")
    assert lines[0].split() == ["PID", "COMM", "FD", "ERR", "FLAGS", "PATH"]
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC      # Python adds O_CLOEXEC
    assert re.search(rf"^{pid} +{COMM} +\d+ +0 {flags:08o} {re.escape(written)}$",
                     "\n".join(rows_of(lines, pid)), re.M)


@pytest.mark.kernel
def test_f_keeps_the_opens_with_that_flag_and_repeats(tmp_path):
    pid, written, lines = snoop(tmp_path, "-f", "O_WRONLY")
    assert [row.split()[-1] for row in rows_of(lines, pid)] == [written]
    pid, written, lines = snoop(tmp_path, "-f", "O_WRONLY", "-f", "O_RDWR")
    assert [row.split()[-1] for row in rows_of(lines, pid)] == [written, written]


@pytest.mark.kernel
def test_the_console_script_is_the_same_tool():
    script = shutil.which("pybpf-opensnoop", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("pybpf is not installed with its console scripts here")
    result = subprocess.run([script, "-d", "1", "-x"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PID    COMM               FD ERR PATH\n")


@pytest.mark.kernel
def test_the_same_rows_as_bccs_opensnoop(tmp_path):
    bcc_command = bcc_tool("opensnoop")
    written = str(tmp_path / "written")
    ours = Running(["-n", COMM], command=TOOL)
    bcc = Running(["-n", COMM], command=bcc_command)
    ours.wait_for("PATH")
    bcc.wait_for("PATH")
    child = subprocess.Popen(named_child(COMM, OPENS, written), stdin=subprocess.PIPE)
    child.communicate(b"go\n", timeout=30)
    time.sleep(0.5)
    our_rows = rows_of(ours.stop()[0].splitlines(), child.pid)
    bcc_rows = rows_of(bcc.stop()[0].splitlines(), child.pid)
    assert our_rows == bcc_rows
