"""One construct of the language per case, its output checked against what bpftrace's
documentation gives for it (see language/README.md)."""

import os
import re

import pytest

from e2e_helpers import run_pybpf

CASES_DIR = os.path.join(os.path.dirname(__file__), "language")
CASES = sorted(f[:-4] for f in os.listdir(CASES_DIR) if f.endswith(".pbt"))


def test_every_case_has_its_expected_output():
    assert len(CASES) >= 7
    for name in CASES:
        assert os.path.getsize(os.path.join(CASES_DIR, f"{name}.out")) > 0, name
        assert os.path.join(CASES_DIR, f"{name}.pbt") in case_command(name), name


def case_command(name: str) -> list[str]:
    """A case's command line: NAME.args, one argument a line with `{script}` where the script
    goes (and `{cases}` for the cases' folder), else the script alone."""
    script = os.path.join(CASES_DIR, f"{name}.pbt")
    path = os.path.join(CASES_DIR, f"{name}.args")
    if not os.path.exists(path):
        return [script]
    with open(path) as f:
        return [script if line == "{script}" else line.replace("{cases}", CASES_DIR)
                for line in f.read().splitlines()]


def expected_stderr(name: str) -> str:
    """NAME.err: the run-time warnings a case prints, `{cases}` for this folder; else nothing."""
    path = os.path.join(CASES_DIR, f"{name}.err")
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        return f.read().replace("{cases}", CASES_DIR)


@pytest.mark.kernel
@pytest.mark.parametrize("name", CASES)
def test_case_prints_what_bpftrace_documents(name):
    result = run_pybpf(case_command(name))
    assert result.returncode == 0, result.stderr
    assert result.stderr == expected_stderr(name)
    with open(os.path.join(CASES_DIR, f"{name}.out")) as f:
        expected = f.read()
    attaching, _, rest = result.stdout.partition("\n")
    assert re.fullmatch(r"Attaching \d+ probes?\.\.\.", attaching), result.stdout
    assert rest == expected


@pytest.mark.kernel
def test_getopt_reads_the_named_script_arguments():
    result = run_pybpf([os.path.join(CASES_DIR, "getopt.pbt"), "--", "--depth=5", "--name=sda",
                        "--verbose"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "5 sda 1"


@pytest.mark.kernel
def test_btf_args_print_whole():
    # one print or a few (CPUs racing): a flood of them could drop exit()'s record
    result = run_pybpf(["-e", "rawtracepoint:sched_switch /@printed == 0/ { @printed = 1; "
                              "print(args); exit(); }"])
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[1]
    assert re.fullmatch(r"\{ \.preempt = \d, \.prev = 0x[0-9a-f]+, \.next = 0x[0-9a-f]+, "
                        r"\.prev_state = \d+ \}", first), result.stdout
