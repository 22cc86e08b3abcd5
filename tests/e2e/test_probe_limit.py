"""The attach-point limit of the real `pybpf` command: BPFTRACE_MAX_PROBES, as bpftrace's, refusing a
wildcard too wide at once, in one line, with nothing loaded."""

import os

import pytest
from e2e_helpers import run_pybpf

WIDE = "tracepoint:*:* { @[probe] = count(); }"


@pytest.mark.kernel
def test_every_tracepoint_is_refused_at_once_under_the_default_limit():
    result = run_pybpf(["--no-cache", "-e", WIDE])
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("stdin: ERROR: Can't attach to ")
    assert "exceeds the current limit of 1024 probes; raise it with the BPFTRACE_MAX_PROBES" in line


@pytest.mark.kernel
def test_the_environment_variable_sets_the_limit():
    env = dict(os.environ, BPFTRACE_MAX_PROBES="2")
    program = "BEGIN { exit(); } END { } interval:s:1 { }"
    refused = run_pybpf(["--no-cache", "-e", program], env=env)
    assert refused.returncode == 1
    assert "Can't attach to 3 probes because it exceeds the current limit of 2 probes" in refused.stderr
    env["BPFTRACE_MAX_PROBES"] = "3"
    accepted = run_pybpf(["-e", program], env=env)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("Attaching 3 probes...")


@pytest.mark.parametrize("value", ["lots", "-1", ""])
def test_a_limit_that_is_not_a_number_is_one_line(value):
    result = run_pybpf(["-e", "BEGIN { exit(); }"], env=dict(os.environ, BPFTRACE_MAX_PROBES=value))
    assert result.returncode == 1
    assert result.stderr == f"ERROR: BPFTRACE_MAX_PROBES: expecting a number, got {value}\n"


def test_the_help_names_the_variable():
    assert "BPFTRACE_MAX_PROBES" in run_pybpf(["-h"]).stdout


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["env", "config"])
def test_more_programs_than_max_bpf_progs_are_refused_with_bpftraces_message(how):
    # three programs: BEGIN, END, interval (pybpf loads one a block here)
    program = "BEGIN { exit(); } END { } interval:s:1 { }"
    env = dict(os.environ, BPFTRACE_MAX_BPF_PROGS="2") if how == "env" else None
    refused = run_pybpf(["--no-cache", "-e", program if env else
                         "config = { max_bpf_progs = 2 } " + program], env=env)
    assert (refused.returncode, refused.stdout) == (1, ""), refused
    assert refused.stderr == (
        "stdin: ERROR: Your program is trying to generate more than 3 BPF programs, which exceeds "
        "the current limit of 2\nHINT: You can increase the limit through the "
        "BPFTRACE_MAX_BPF_PROGS environment variable.\n")
    accepted = run_pybpf(["-e", program], env=dict(os.environ, BPFTRACE_MAX_BPF_PROGS="3"))
    assert accepted.returncode == 0 and accepted.stdout.startswith("Attaching 3 probes..."), accepted
