"""Builtins end to end, against what bpftrace's documentation says of each."""

import os
import re
import subprocess

import pytest

from e2e_helpers import READY, Running, named_child, run_pybpf


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
    assert re.findall(r"^@\[(\w+)\]: \d+$", result.stdout, re.M) == ["true"]     # a bool, as bpftrace 0.26


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


# A second of work in user space (Python arithmetic), or in the kernel (reading /dev/urandom).
SPIN = ("import time\nend = time.monotonic() + 1\n"
        "while time.monotonic() < end:\n    sum(range(1000))\n")
READ_URANDOM = ("import time\nend = time.monotonic() + 1\n"
                "with open('/dev/urandom', 'rb', buffering=0) as f:\n"
                "    while time.monotonic() < end:\n        f.read(1 << 20)\n")


@pytest.mark.kernel
def test_usermode_tells_user_from_kernel_samples():
    # bpftrace: "usermode: Returns 1 if the current process is in user mode, 0 otherwise".
    run = Running(["-e", READY + 'profile:hz:499 /comm == "pybpfuser" || comm == "pybpfkern"/ '
                   "{ @[comm, usermode] = count(); }"])
    run.wait_for("ready")
    children = [subprocess.Popen(named_child("pybpfuser", SPIN)),
                subprocess.Popen(named_child("pybpfkern", READ_URANDOM))]
    for child in children:
        assert child.wait(timeout=30) == 0
    out, err, code = run.stop()
    assert code == 0, err
    samples = {(comm, int(mode)): int(n)
               for comm, mode, n in re.findall(r"^@\[(\w+), (\d)\]: (\d+)$", out, re.M)}
    user = {mode: samples.get(("pybpfuser", mode), 0) for mode in (0, 1)}
    kernel = {mode: samples.get(("pybpfkern", mode), 0) for mode in (0, 1)}
    # ~250 samples each; the spinner enters the kernel only for clock reads and timer ticks, the
    # reader leaves it only to loop.
    assert user[1] > 4 * user[0] and user[1] > 50, samples
    assert kernel[0] > 2 * kernel[1] and kernel[0] > 50, samples

