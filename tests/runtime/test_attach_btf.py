"""Raw tracepoints, BTF tracepoints, kprobes and fentry/fexit: attached where this kernel allows it (raw and
BTF tracepoints), refused with one clear line where it does not (kprobes compiled out, fentry EPERM)."""

import os
import time

import pytest
from bpfobj import count, load_counting, program

from pybpf import btf
from pybpf.program import AttachPoint, BpfProgramSpec
from pybpf.runtime.attach import attach
from pybpf.runtime.attach.fentry import fentry_available
from pybpf.runtime.attach.kprobe import kprobes_available, parse_target
from pybpf.runtime.attach.perf_event import pmu_type
from pybpf.runtime.errors import NotSupportedError
from pybpf.runtime.loader import ProbeUnavailableError, lockdown_mode
from pybpf.uapi.bpf import BpfAttachType, BpfProgType

SYS_GETPPID = 110         # x86-64
SYS_ENTER = AttachPoint("rawtracepoint", "sys_enter", attach_kind="rawtracepoint")
VFS_READ = AttachPoint("fentry", "vfs_read", attach_kind="fentry")


def getppid_counter() -> str:
    """Count this process's getppid calls at sys_enter(regs, id): ctx is u64 args[], id is args[1],
    for a raw tracepoint and a BTF tracepoint alike."""
    body = program(count="counts", only_pid=os.getpid())
    ours = f"  %ours = icmp eq i64 %tgid, {os.getpid()}\n"
    assert ours in body
    return body.replace(ours, f"""  %pid_ok = icmp eq i64 %tgid, {os.getpid()}
  %nr_at = getelementptr i8, ptr %ctx, i64 8
  %nr = load i64, ptr %nr_at, align 8
  %nr_ok = icmp eq i64 %nr, {SYS_GETPPID}
  %ours = and i1 %pid_ok, %nr_ok
""")


def counts_getppid_until_detached(spec: BpfProgramSpec) -> None:
    obj, prog_fd = load_counting(spec, getppid_counter())
    with obj:
        attachment = attach(prog_fd, spec.attach_points[0], spec)
        try:
            for _ in range(7):
                os.getppid()
        finally:
            attachment.close()
        assert count(obj) == 7
        os.getppid()                       # detached: no longer counted
        assert count(obj) == 7


@pytest.mark.kernel
def test_raw_tracepoint_counts_until_detached():
    counts_getppid_until_detached(BpfProgramSpec("raw_tracepoint/rt_sys_enter", BpfProgType.RAW_TRACEPOINT,
                                              (SYS_ENTER,)))


@pytest.mark.kernel
def test_btf_tracepoint_counts_until_detached():
    btf_id = btf.vmlinux().find_id("btf_trace_sys_enter", "typedef")
    assert btf_id
    counts_getppid_until_detached(BpfProgramSpec("tp_btf/rt_sys_enter", BpfProgType.TRACING,
                                              (SYS_ENTER,),
                                              BpfAttachType.TRACE_RAW_TP, btf_id))


@pytest.mark.kernel
def test_sched_switch_raw_tracepoint_fires():
    spec = BpfProgramSpec("raw_tracepoint/rt_switch", BpfProgType.RAW_TRACEPOINT,
                       (AttachPoint("rawtracepoint", "sched_switch", attach_kind="rawtracepoint"),))
    obj, prog_fd = load_counting(spec, program(count="counts"))
    with obj:
        attachment = attach(prog_fd, spec.attach_points[0], spec)
        try:
            for _ in range(3):
                time.sleep(0.001)          # sleeping switches this task out
        finally:
            attachment.close()
        assert count(obj) >= 3


@pytest.mark.kernel
def test_missing_raw_tracepoint_is_not_supported():
    spec = BpfProgramSpec("raw_tracepoint/rt_none", BpfProgType.RAW_TRACEPOINT,
                       (AttachPoint("rawtracepoint", "no_such_tracepoint", attach_kind="rawtracepoint"),))
    obj, prog_fd = load_counting(spec, program())
    with obj, pytest.raises(NotSupportedError, match="no raw tracepoint 'no_such_tracepoint'"):
        attach(prog_fd, spec.attach_points[0], spec)


@pytest.mark.kernel
@pytest.mark.parametrize("provider", ["kprobe", "kretprobe"])
def test_kprobe_without_kprobes_says_so(provider):
    if pmu_type("kprobe") is not None:
        pytest.skip("this kernel has kprobes")
    with pytest.raises(ProbeUnavailableError) as e:
        attach(-1, AttachPoint(provider, "vfs_read", attach_kind=provider))
    assert str(e.value) == (f"kprobes are not available in this kernel (CONFIG_KPROBES is not set): "
                            f"{provider}:vfs_read cannot attach")


@pytest.mark.kernel
@pytest.mark.parametrize("provider,attach_type", [("fentry", BpfAttachType.TRACE_FENTRY),
                                                  ("fexit", BpfAttachType.TRACE_FEXIT)])
def test_fentry_attaches_or_is_refused_at_load_in_one_line(provider, attach_type):
    spec = BpfProgramSpec(f"{provider}/rt_vfs_read", BpfProgType.TRACING,
                       (AttachPoint(provider, "vfs_read", attach_kind="fentry"),),
                       attach_type, btf.vmlinux().find_id("vfs_read", "func"))
    try:
        obj, prog_fd = load_counting(spec, program(count="counts", only_pid=os.getpid()))
    except ProbeUnavailableError as e:          # this machine: lockdown
        mode = lockdown_mode()
        why = f"kernel lockdown is in {mode} mode" if mode and mode != "none" else "kernel lockdown?"
        assert str(e) == (f"{provider}:vfs_read: fentry/fexit programs cannot be loaded on this kernel: "
                          f"BPF_PROG_LOAD returned EPERM ({why})")
        assert "\n" not in str(e)
        return
    with obj:                                   # a kernel that takes fentry
        attachment = attach(prog_fd, spec.attach_points[0], spec)
        try:
            with open("/proc/self/stat", "rb") as f:
                f.read()
        finally:
            attachment.close()
        assert count(obj) >= 1


@pytest.mark.parametrize("target,expected", [("vfs_read", ("vfs_read", 0)),
                                             ("vfs_read+0x10", ("vfs_read", 16)),
                                             ("vfs_read+8", ("vfs_read", 8)),
                                             ("ext4:ext4_file_read_iter", ("ext4_file_read_iter", 0))])
def test_kprobe_target(target, expected):
    assert parse_target(target) == expected


def test_lockdown_mode(tmp_path):
    path = tmp_path / "lockdown"
    path.write_text("none [integrity] confidentiality\n")
    assert lockdown_mode(str(path)) == "integrity"
    assert lockdown_mode(str(tmp_path / "missing")) is None


@pytest.mark.kernel
def test_availability_probes_agree_with_attaching():
    vfs_read = btf.vmlinux().find_id("vfs_read", "func")
    try:
        load_counting(BpfProgramSpec("fentry/rt_probe", BpfProgType.TRACING, (VFS_READ,),
                              BpfAttachType.TRACE_FENTRY, vfs_read), program())[0].close()
        loads = True
    except ProbeUnavailableError:
        loads = False
    assert fentry_available(vfs_read) == loads
    assert kprobes_available() == os.path.exists("/sys/bus/event_source/devices/kprobe/type")
