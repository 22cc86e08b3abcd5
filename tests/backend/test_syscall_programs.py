"""Syscall tracepoints of one probe sharing one program on raw sys_enter/sys_exit: when they do,
what the program is, and when the probe keeps one perf-event program per tracepoint instead.
Needs tracefs (the tracepoints' formats) but loads nothing."""

import platform

import pytest

from pybpf import tracefs
from pybpf.compiler import CompileOptions, compile_source, compile_to_ir
from pybpf.features import FixedFeatures
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.unistd_64 import SYSCALL_NUMBERS

try:
    tracefs.root()
    HAVE_TRACEFS = True
except tracefs.TracefsError:
    HAVE_TRACEFS = False

pytestmark = [
    pytest.mark.skipif(not HAVE_TRACEFS, reason="needs tracefs"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the syscall table is x86-64's"),
]


def programs(source, **options):
    return compile_source(source, options=CompileOptions(**options)).programs


def test_a_wildcard_shares_one_raw_sys_enter_program():
    (program,) = programs("tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }")
    assert program.prog_type == BpfProgType.RAW_TRACEPOINT
    assert program.raw_tracepoint == "sys_enter"
    names = {p.target for p in program.attach_points}
    assert {"syscalls:sys_enter_open", "syscalls:sys_enter_openat"} <= names


def test_probe_names_every_syscall_of_the_shared_program():
    compiled = compile_source("tracepoint:syscalls:sys_enter_getppid,"
                              "tracepoint:syscalls:sys_enter_getpgid { @[probe] = count(); }")
    assert sorted(compiled.probe_names.values()) == ["tracepoint:syscalls:sys_enter_getpgid",
                                                     "tracepoint:syscalls:sys_enter_getppid"]
    ir_text, _, _ = compile_to_ir("tracepoint:syscalls:sys_enter_getppid,"
                                  "tracepoint:syscalls:sys_enter_getpgid { @[probe] = count(); }")
    (phi,) = [line for line in ir_text.splitlines() if " phi " in line]
    for probe_id in compiled.probe_names:            # the values `probe` takes, one per syscall
        assert f"[{probe_id}," in phi


def test_enter_and_exit_each_get_their_program():
    progs = programs("tracepoint:syscalls:sys_enter_getppid,tracepoint:syscalls:sys_enter_getpid,"
                     "tracepoint:syscalls:sys_exit_getppid,tracepoint:syscalls:sys_exit_getpid "
                     "{ @[probe] = count(); }")
    assert sorted(p.raw_tracepoint for p in progs) == ["sys_enter", "sys_exit"]


@pytest.mark.parametrize("source", [
    # one syscall: its own perf event costs nothing on the others
    "tracepoint:syscalls:sys_enter_openat { @ = count(); }",
    # the argument sits in another register in each (open: filename first; openat: second)
    "tracepoint:syscalls:sys_enter_open,tracepoint:syscalls:sys_enter_openat "
    "{ @[str(args->filename)] = count(); }",
])
def test_probes_the_raw_tracepoint_cannot_serve_keep_perf_events(source):
    assert all(p.prog_type == BpfProgType.TRACEPOINT and not p.raw_tracepoint
               for p in programs(source))


def test_arguments_in_the_same_register_are_shared():
    (program,) = programs("tracepoint:syscalls:sys_enter_read,tracepoint:syscalls:sys_enter_pread64 "
                          "{ @[probe] = sum(args->count); }")
    assert program.raw_tracepoint == "sys_enter"


def test_no_shared_syscalls_keeps_one_perf_event_per_tracepoint_sharing_a_program_by_cookie():
    (program,) = programs("tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }",
                          share_syscalls=False, features=FixedFeatures(cookies=True))
    assert program.prog_type == BpfProgType.TRACEPOINT
    assert len(program.attach_points) > 1
    assert all(p.attach_kind == "tracepoint" and p.cookie for p in program.attach_points)


def test_without_grouping_each_syscall_tracepoint_has_its_own_program():
    progs = programs("tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }",
                     share_syscalls=False, group_tracepoints=False,
                     features=FixedFeatures(cookies=True))
    assert len(progs) > 1
    assert all(p.prog_type == BpfProgType.TRACEPOINT and len(p.attach_points) == 1
               and not p.attach_points[0].cookie for p in progs)


def test_every_syscall_tracepoint_here_has_a_number():
    names = [n for c, n in tracefs.list_tracepoints() if c == "syscalls"]
    assert names
    missing = [n for n in names
               if n.split("_", 2)[2] not in SYSCALL_NUMBERS]     # sys_enter_NAME / sys_exit_NAME
    assert not missing
