"""pybpf's execsnoop (pybpf.tools.execsnoop) against execs the test makes: a known command line,
a failing exec, and each option by the rows it keeps, the columns it adds and the ones it leaves
out."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from e2e_helpers import Running, bcc_tool

TOOL = [sys.executable, "-m", "pybpf.tools.execsnoop"]
ECHO = shutil.which("echo") or "/bin/echo"
MISSING = "/pybpf-execsnoop-no-such-dir/prog"
ROW = re.compile(r"^(?P<lead>.*?)(?P<comm>\S+) +(?P<pid>\d+) +(?P<ppid>\d+|\?) +(?P<ret>-?\d+) "
                 r"(?P<args>.*)$")


def snoop(*options, commands):
    """Run execsnoop with `options` while the test execs `commands` (argv lists; a missing
    program fails its exec) -> (pids of the commands that ran, the rows as ROW matches)."""
    run = Running(list(options), command=TOOL)
    header = run.wait_for("PCOMM")
    pids = []
    for argv in commands:
        try:
            child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        except FileNotFoundError:
            continue                       # the failed exec: its pid is the forked child's
        child.wait(timeout=30)
        pids.append(child.pid)
    time.sleep(0.2)                        # the events reach the tool
    out, err, code = run.stop()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == header.rstrip("\n")
    return pids, [m for m in map(ROW.match, lines[1:]) if m]


def test_help_prints_bccs_options():
    result = subprocess.run(TOOL + ["-h"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0
    assert result.stdout.startswith("usage: execsnoop [-h] [-T] [-t] [-x] [-u USER] [-q] [-n NAME] "
                                    "[-l LINE] [-U] [--max-args MAX_ARGS]\n")
    for text in ("[-P PPID]\n\nTrace exec() syscalls\n", "-P PPID, --ppid PPID", "include failed exec()s",
                 "./execsnoop -x", "./execsnoop --max-args 5"):
        assert text in result.stdout


def test_max_args_is_bounded():
    result = subprocess.run(TOOL + ["--max-args", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--max-args must be from 1 to" in result.stderr


@pytest.mark.kernel
def test_a_command_line_with_its_pid_parent_result_and_arguments():
    pids, rows = snoop(commands=[[ECHO, "pybpf-execsnoop-one", "two words", 'quo"te']])
    mine = [r for r in rows if r["pid"] == str(pids[0])]
    assert len(mine) == 1, rows
    row = mine[0]
    assert (row["comm"], row["ppid"], row["ret"]) == ("echo", str(os.getpid()), "0")
    # BCC's form: the path, then argv[1:] joined by spaces, unquoted
    assert row["args"] == f'{ECHO} pybpf-execsnoop-one two words quo"te'
    assert row["lead"] == ""


@pytest.mark.kernel
def test_failed_execs_only_with_x():
    commands = [[MISSING, "pybpf-failing-arg"], [ECHO, "pybpf-after-the-failure"]]
    _, rows = snoop(commands=commands)
    assert not [r for r in rows if MISSING in r["args"]]
    assert [r for r in rows if r["args"].endswith("pybpf-after-the-failure")]
    _, rows = snoop("-x", commands=commands)
    failed = [r for r in rows if r["args"] == f"{MISSING} pybpf-failing-arg"]
    assert len(failed) == 1, rows
    assert failed[0]["ret"] == "-2" and failed[0]["ppid"] == str(os.getpid())  # ENOENT


@pytest.mark.kernel
def test_max_args_cuts_with_an_ellipsis_and_q_quotes():
    pids, rows = snoop("--max-args", "3", "-q", commands=[[ECHO, "a1", "a 2", "a3", "a4"]])
    row = next(r for r in rows if r["pid"] == str(pids[0]))
    assert row["args"] == f'"{ECHO}" "a1" "a 2" "..."'


@pytest.mark.kernel
def test_n_and_l_keep_matching_names_and_lines():
    commands = [[ECHO, "pybpf-by-echo"], ["/bin/true", "pybpf-by-true"]]
    _, rows = snoop("-n", "^ech", commands=commands)
    assert {r["comm"] for r in rows} == {"echo"}
    _, rows = snoop("-l", "by-tr", commands=commands)
    assert [r["args"] for r in rows] == ["/bin/true pybpf-by-true"]


@pytest.mark.kernel
def test_u_and_P_filter_in_the_kernel():
    pids, rows = snoop("-u", "root", commands=[[ECHO, "pybpf-as-root"]])
    assert str(pids[0]) in [r["pid"] for r in rows]
    _, rows = snoop("-u", "4242", commands=[[ECHO, "pybpf-as-root"]])      # a uid nobody has
    assert rows == []
    pids, rows = snoop("-P", str(os.getpid()), commands=[[ECHO, "pybpf-child"]])
    assert rows and all(r["ppid"] == str(os.getpid()) for r in rows)
    assert str(pids[0]) in [r["pid"] for r in rows]


@pytest.mark.kernel
def test_T_t_and_U_add_their_columns():
    run = Running(["-T", "-t", "-U"], command=TOOL)
    header = run.wait_for("PCOMM")
    subprocess.run([ECHO, "pybpf-columns"], stdout=subprocess.DEVNULL, check=True)
    time.sleep(0.2)
    out, err, code = run.stop()
    assert code == 0, err
    assert header.startswith("TIME     TIME(s) UID   PCOMM            PID     PPID    RET ARGS")
    row = next(line for line in out.splitlines() if line.endswith(" pybpf-columns"))
    assert re.match(r"^\d\d:\d\d:\d\d \d+\.\d{3} +0 +echo ", row), row


@pytest.mark.kernel
def test_the_console_script_is_the_same_tool():
    script = shutil.which("pybpf-execsnoop", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("pybpf is not installed with its console scripts here")
    run = Running([], command=[script])
    assert run.wait_for("PCOMM").split() == ["PCOMM", "PID", "PPID", "RET", "ARGS"]
    out, err, code = run.stop()
    assert code == 0, err


@pytest.mark.kernel
def test_the_same_rows_as_bccs_execsnoop():
    bcc_command = bcc_tool("execsnoop")
    ours, bcc = Running(["-x"], command=TOOL), Running(["-x"], command=bcc_command)
    ours.wait_for("PCOMM")
    bcc.wait_for("PCOMM")
    child = subprocess.Popen([ECHO, "pybpf-side-by-side", "two words"], stdout=subprocess.DEVNULL)
    child.wait(timeout=30)
    try:
        subprocess.Popen([MISSING, "pybpf-side-by-side"])
    except FileNotFoundError:
        pass
    time.sleep(0.5)
    rows = [[line for line in run.stop()[0].splitlines() if "pybpf-side-by-side" in line]
            for run in (ours, bcc)]
    assert rows[0] == rows[1] and len(rows[0]) == 2, rows
