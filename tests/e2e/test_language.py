"""One construct of the language per case, its output checked against what bpftrace's
documentation gives for it (see language/README.md)."""

import os

import pytest

from e2e_helpers import run_pybpf

CASES_DIR = os.path.join(os.path.dirname(__file__), "language")
CASES = sorted(f[:-4] for f in os.listdir(CASES_DIR) if f.endswith(".pbt"))


def test_every_case_has_its_expected_output():
    assert len(CASES) >= 7
    for name in CASES:
        assert os.path.getsize(os.path.join(CASES_DIR, f"{name}.out")) > 0, name


def case_options(name: str) -> list[str]:
    """The command-line options a case runs with, before the script: NAME.args, one a line."""
    path = os.path.join(CASES_DIR, f"{name}.args")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


@pytest.mark.kernel
@pytest.mark.parametrize("name", CASES)
def test_case_prints_what_bpftrace_documents(name):
    result = run_pybpf(case_options(name) + [os.path.join(CASES_DIR, f"{name}.pbt")])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(os.path.join(CASES_DIR, f"{name}.out")) as f:
        expected = f.read()
    assert result.stdout == "Attaching 1 probe...\n" + expected


@pytest.mark.kernel
def test_getopt_reads_the_named_script_arguments():
    result = run_pybpf([os.path.join(CASES_DIR, "getopt.pbt"), "--", "--depth=5", "--name=sda",
                        "--verbose"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "5 sda 1"
