"""The typed errors of failed system calls, and the capability check the CLI asks first."""

import errno

import pytest

from pybpf.runtime.errors import BpfError
from pybpf.runtime.syscall import CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, error_for, has_tracing_capabilities


@pytest.mark.parametrize("caps, allowed", [
    (0, False), (1 << CAP_BPF, False), (1 << CAP_PERFMON, False),
    (1 << CAP_BPF | 1 << CAP_PERFMON, True), (1 << CAP_SYS_ADMIN, True), ((1 << 41) - 1, True)])
def test_tracing_needs_cap_sys_admin_or_both_cap_bpf_and_cap_perfmon(tmp_path, caps, allowed):
    status = tmp_path / "status"
    status.write_text(f"Name:\tpybpf\nCapInh:\t0000000000000000\nCapEff:\t{caps:016x}\n")
    assert has_tracing_capabilities(str(status)) is allowed


@pytest.mark.parametrize("err, hint", [(errno.EMFILE, "raise the limit (ulimit -n)"),
                                       (errno.ENFILE, "the system's file table is full")])
def test_out_of_file_descriptors_is_said_as_such(err, hint):
    e = error_for("PROG_LOAD", err)
    assert type(e) is BpfError and str(e).endswith(hint)
