"""`-lv` argument lines and BTF probe lists against this kernel's tracefs and BTF, in bpftrace's spelling
(bpftrace 0.17 -lv tracepoint:syscalls:sys_enter_openat prints exactly the lines below)."""

import os
import shutil
import subprocess

import pytest

from pybpf.btf import VMLINUX
from pybpf.listing import ListingError, describe_probe, list_probes

needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"{VMLINUX} is missing")

OPENAT = ["    int __syscall_nr", "    int dfd", "    const char * filename", "    int flags",
          "    umode_t mode"]


@pytest.mark.kernel
@pytest.mark.parametrize("name", ["tracepoint:syscalls:sys_enter_openat", "t:syscalls:sys_enter_openat"])
def test_tracepoint_fields_as_bpftrace_prints_them(name):
    assert describe_probe(name) == OPENAT


@pytest.mark.kernel
def test_tracepoint_arrays_and_data_loc_as_written_in_the_format_file():
    assert describe_probe("tracepoint:sched:sched_switch")[:2] == ["    char prev_comm[16]", "    pid_t prev_pid"]
    assert describe_probe("tracepoint:sched:sched_process_exec")[0] == "    __data_loc char[] filename"


@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("bpftrace"), reason="bpftrace is not installed")
@pytest.mark.parametrize("probe", ["tracepoint:syscalls:sys_enter_openat", "tracepoint:sched:sched_switch",
                                   "tracepoint:sched:sched_process_exec"])
def test_same_lines_as_bpftrace(probe):
    out = subprocess.run(["bpftrace", "-lv", probe], capture_output=True, text=True, timeout=30).stdout
    assert out.splitlines() == [probe] + describe_probe(probe)


@needs_vmlinux
@pytest.mark.parametrize("name", ["rawtracepoint:sched_switch", "rt:sched_switch"])
def test_raw_tracepoint_params_after_data(name):
    lines = describe_probe(name)
    assert "    struct task_struct * prev" in lines
    assert "    struct task_struct * next" in lines
    assert not any("__data" in ln for ln in lines)


@needs_vmlinux
def test_fentry_params():
    assert describe_probe("fentry:vfs_read") == ["    struct file * file", "    char * buf", "    size_t count",
                                                 "    loff_t * pos"]
    assert describe_probe("kfunc:vfs_read") == describe_probe("fentry:vfs_read")


@needs_vmlinux
def test_fexit_adds_retval_unless_void():
    assert describe_probe("fexit:vfs_read") == describe_probe("fentry:vfs_read") + ["    ssize_t retval"]
    assert not any("retval" in ln for ln in describe_probe("fexit:schedule"))


def test_kprobe_has_no_typed_args():
    assert describe_probe("kprobe:vfs_read") == []


@needs_vmlinux
@pytest.mark.parametrize("name", ["fentry:no_such_function_xyz", "rawtracepoint:no_such_tp_xyz", "nosuch:x", "vfs_read"])
def test_unknown_probe_is_an_error(name):
    with pytest.raises(ListingError):
        describe_probe(name)


@needs_vmlinux
def test_list_raw_tracepoints():
    names = list_probes("rawtracepoint:sched_*")
    assert "rawtracepoint:sched_switch" in names
    assert all(n.startswith("rawtracepoint:sched_") for n in names)
    assert names == sorted(set(names))
    assert list_probes("rt:sched_*") == names


@needs_vmlinux
@pytest.mark.parametrize("provider", ["fentry", "fexit", "kprobe", "kretprobe"])
def test_list_functions(provider):
    names = list_probes(f"{provider}:vfs_rea*")
    assert f"{provider}:vfs_read" in names
    assert all(n.startswith(f"{provider}:vfs_rea") for n in names)


@pytest.mark.kernel
def test_tracepoints_list_by_provider_or_by_default():
    names = list_probes("t:sched:sched_swi*")
    assert names == ["tracepoint:sched:sched_switch"]
    assert list_probes("*:sched:sched_swi*") == names == list_probes("sched_switch")


def test_probes_without_a_listing():
    assert list_probes("interval:*") == []
    with pytest.raises(ListingError, match="does not describe interval"):
        describe_probe("interval:ms:1")
