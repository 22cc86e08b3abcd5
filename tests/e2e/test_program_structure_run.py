"""The program-structure constructs end to end: what they print, as bpftrace's documentation says."""

import pytest

from e2e_helpers import run_pybpf


@pytest.mark.kernel
def test_kernel_enumerator_prints_its_value():
    result = run_pybpf(["-e", 'BEGIN { printf("%d %d\\n", BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY + 1); '
                              'exit(); }'])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "1 3"


@pytest.mark.kernel
def test_interval_with_a_unit_suffix_and_a_parameter_runs():
    result = run_pybpf(["-e", 'interval:$1ms { printf("%s %s\\n", probe, str($2)); exit(); }',
                        "20", "done"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "interval:ms:20 done"
