"""Builtins end to end, against what bpftrace's documentation says of each."""

import os
import re

import pytest

from e2e_helpers import run_pybpf


def printed(program: str) -> list[str]:
    """The words of the one line a BEGIN { printf(...); exit(); } program prints."""
    result = run_pybpf(["-e", program])
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[1].split()


def kernel_jiffies() -> int:
    with open("/proc/timer_list") as f:
        return int(re.search(r"^jiffies: (\d+)$", f.read(), re.M)[1])


@pytest.mark.kernel
def test_ncpus_counts_the_possible_cpus():
    # bpftrace: "ncpus: Number of CPUs", the possible CPUs it also sizes per-CPU reads by.
    with open("/sys/devices/system/cpu/possible") as f:
        possible = {cpu for part in f.read().strip().split(",")
                    for cpu in range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1)}
    assert printed('BEGIN { printf("%d\\n", ncpus); exit(); }') == [str(len(possible))]


@pytest.mark.kernel
def test_every_cpu_a_probe_runs_on_is_below_ncpus():
    result = run_pybpf(["-e", "t:sched:sched_switch { @[cpu < ncpus] = count(); } "
                              "i:ms:200 { exit(); }"])
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^@\[(\d)\]: \d+$", result.stdout, re.M) == ["1"]


@pytest.mark.kernel
def test_jiffies_is_the_kernels_tick_count():
    # bpftrace: "jiffies: Jiffies of the kernel" (bpf_jiffies64); /proc/timer_list shows jiffies_64.
    before = kernel_jiffies()
    (value,) = printed('BEGIN { printf("%d\\n", jiffies); exit(); }')
    assert before <= int(value) <= kernel_jiffies()


@pytest.mark.kernel
def test_numaid_is_the_node_of_the_cpu_the_probe_runs_on():
    # bpftrace: "numaid: ID of the NUMA node executing the BPF program". BEGIN runs in pybpf's own
    # task, so cpu and numaid are read on the same CPU.
    cpu, node = printed('BEGIN { printf("%d %d\\n", cpu, numaid); exit(); }')
    assert os.path.exists(f"/sys/devices/system/cpu/cpu{cpu}/node{node}")
