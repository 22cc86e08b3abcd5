"""uprobes, uretprobes and profile sampling on this kernel: events fired from this test (or a tiny C
program compiled here) and counted by the program in a map."""

import os
import subprocess
import time

import pytest
from bpfobj import count, load_one, program

from pybpf import elfsym
from pybpf.program import AttachPoint
from pybpf.runtime.attach import attach
from pybpf.runtime.attach.perf_event import online_cpus, parse_cpu_list
from pybpf.runtime.attach.uprobe import uprobes_available
from pybpf.runtime.errors import NotSupportedError
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.uapi.bpf import BpfProgType

pytestmark = pytest.mark.kernel

CALLS = 50

C_SOURCE = r"""
#include <stdlib.h>
/* in assembly, so that +1 is the start of an instruction (a probe inside one never fires) */
__asm__(".text\n.globl pybpf_target\n.type pybpf_target, @function\npybpf_target:\n"
        "  nop\n  lea 1(%rdi,%rdi,1), %eax\n  ret\n.size pybpf_target, .-pybpf_target\n");
int pybpf_target(int x);
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1, s = 0;
    for (int i = 0; i < n; i++) s += pybpf_target(i);
    return s == -1;
}
"""


@pytest.fixture
def needs_uprobes():
    if not uprobes_available():
        pytest.skip("no uprobe PMU in this kernel")


@pytest.fixture(scope="module", params=["pie", "no-pie"])
def c_binary(request, compile_c):
    """The program as PIE (vaddr = file offset) and not (vaddr 0x401000 at file offset 0x1000)."""
    return compile_c(C_SOURCE, f"-{request.param}")


@pytest.mark.parametrize("provider", ["uprobe", "uretprobe"])
def test_libc_getpid_counts_our_calls(needs_uprobes, provider):
    obj, prog_fd = load_one("uprobe/rt_getpid", BpfProgType.KPROBE, program(count="counts", only_pid=os.getpid()))
    libc = elfsym.find_binary("libc")
    affinity = os.sched_getaffinity(0)
    with obj:
        attachment = attach(prog_fd, AttachPoint(provider, f"{libc}:getpid", attach_kind=provider))
        try:
            for cpu in sorted(affinity):       # one perf event on CPU 0 still sees every CPU
                os.sched_setaffinity(0, {cpu})
                for _ in range(CALLS):
                    os.getpid()
        finally:
            os.sched_setaffinity(0, affinity)
            attachment.close()
        n = count(obj)
        # glibc does not cache getpid; the interpreter may call it a few times on its own
        assert CALLS * len(affinity) <= n <= CALLS * len(affinity) + 10, n
        os.getpid()
        assert count(obj) == n                 # detached


@pytest.mark.parametrize("provider,target", [("uprobe", "pybpf_target"), ("uretprobe", "pybpf_target"),
                                             ("uprobe", "pybpf_target+0x1"), ("uprobe", "main")])
def test_compiled_binary_function(needs_uprobes, c_binary, provider, target):
    obj, prog_fd = load_one("uprobe/rt_target", BpfProgType.KPROBE, program(count="counts"))
    with obj:
        attachment = attach(prog_fd, AttachPoint(provider, f"{c_binary}:{target}", attach_kind=provider))
        try:
            subprocess.run([c_binary, "37"], check=True)
        finally:
            attachment.close()
        assert count(obj) == (1 if target == "main" else 37)


def test_missing_function_is_unavailable_with_its_name(needs_uprobes, c_binary):
    obj, prog_fd = load_one("uprobe/rt_x", BpfProgType.KPROBE, program())
    with obj, pytest.raises(ProbeUnavailableError, match=f"no function 'nosuch' in {c_binary}"):
        attach(prog_fd, AttachPoint("uprobe", f"{c_binary}:nosuch", attach_kind="uprobe"))


def test_missing_binary_is_unavailable(needs_uprobes):
    with pytest.raises(ProbeUnavailableError, match="binary not found: /no/such/bin"):
        attach(-1, AttachPoint("uprobe", "/no/such/bin:main", attach_kind="uprobe"))


def test_an_instruction_the_kernel_cannot_probe_is_one_line(needs_uprobes):
    """This kernel refuses a uprobe on glibc's pthread_spin_lock (ENOTSUPP, 524: the x86
    instruction decoder declines its `lock decl`, as split by the symbol table)."""
    libc = elfsym.find_binary("libc")
    obj, prog_fd = load_one("uprobe/rt_locked", BpfProgType.KPROBE, program())
    with obj:
        try:
            attach(prog_fd, AttachPoint("uprobe", f"{libc}:pthread_spin_lock", attach_kind="uprobe")).close()
        except ProbeUnavailableError as e:
            assert str(e) == (f"uprobe:{libc}:pthread_spin_lock: the kernel refused a uprobe at file offset "
                              f"{elfsym.uprobe_offset(libc, 'pthread_spin_lock'):#x} of {libc}: the kernel "
                              "cannot probe the instruction there")
        else:
            pytest.skip("this kernel and libc probe pthread_spin_lock")


def test_profile_samples_on_every_online_cpu_and_closes_them_all():
    obj, prog_fd = load_one("perf_event/rt_profile", BpfProgType.PERF_EVENT, program(count="counts"))
    with obj:
        attachment = attach(prog_fd, AttachPoint("profile", "hz:997", attach_kind="profile"))
        assert len(attachment.fds) == len(online_cpus())
        time.sleep(0.3)
        attachment.close()
        assert attachment.fds == []
        samples = count(obj)
        # 997 Hz x 0.3 s per CPU while it runs: idle CPUs are sampled too (cpu-clock)
        assert 0 < samples <= 997 * 0.6 * len(online_cpus()), samples
        time.sleep(0.02)
        assert count(obj) == samples


def test_profile_by_period():
    obj, prog_fd = load_one("perf_event/rt_profile", BpfProgType.PERF_EVENT, program(count="counts"))
    with obj:
        attachment = attach(prog_fd, AttachPoint("profile", "ms:2", period_ns=2_000_000, attach_kind="profile"))
        time.sleep(0.2)
        attachment.close()
        assert count(obj) > 0


def test_profile_needs_a_rate():
    with pytest.raises(ValueError, match="positive frequency"):
        attach(-1, AttachPoint("profile", "hz:0", attach_kind="profile"))
    with pytest.raises(ValueError, match="positive period"):
        attach(-1, AttachPoint("profile", "ms:0", attach_kind="profile"))


def test_cpu_list():
    assert parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert parse_cpu_list("0") == [0]


def test_not_supported_is_the_base_of_unavailable():
    assert issubclass(ProbeUnavailableError, NotSupportedError)
