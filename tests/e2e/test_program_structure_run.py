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


@pytest.mark.kernel
def test_print_maps_on_exit_from_the_config_block_and_the_environment():
    import os
    program = "config = { print_maps_on_exit = false } BEGIN { @a = 1; exit(); }"
    result = run_pybpf(["-e", program])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Attaching 1 probe...\n"
    # the environment wins over the script
    result = run_pybpf(["-e", program], env=dict(os.environ, BPFTRACE_PRINT_MAPS_ON_EXIT="1"))
    assert result.stdout.endswith("@a: 1\n")


def test_a_bad_setting_in_the_environment_is_one_line():
    import os
    result = run_pybpf(["-e", "BEGIN { exit(); }"], env=dict(os.environ, BPFTRACE_MAX_STRLEN="x"))
    assert result.returncode == 1
    assert result.stderr == "ERROR: BPFTRACE_MAX_STRLEN: expecting a number, got x\n"
