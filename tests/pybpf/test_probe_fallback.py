"""kprobe <-> fentry: a probe on a kernel function moves to the mechanism the kernel has. This
kernel has neither (kprobes compiled out, fentry refused), so the compiler is given other answers
(pybpf.features) and the compiled programs are checked."""

import os

import pytest

from pybpf import btf
from pybpf.backend.objspec import parse_object
from pybpf.compiler import CompileOptions, compile_source
from pybpf.features import FixedFeatures
from pybpf.uapi.bpf import BpfAttachType, BpfProgType

pytestmark = pytest.mark.skipif(not os.path.exists(btf.VMLINUX), reason="needs the kernel's BTF")


def compile_where(source: str, kprobes: bool, fentries: bool):
    return compile_source(source, options=CompileOptions(features=FixedFeatures(kprobes, fentries)))


def context_offsets(compiled):
    (program,) = compiled.programs
    insns = parse_object(compiled.elf).programs[program.section].insns
    return {int.from_bytes(insns[i + 2:i + 4], "little", signed=True)
            for i in range(0, len(insns), 8) if insns[i] == 0x79 and insns[i + 1] >> 4 == 1}


def test_kprobe_becomes_fentry_without_kprobes():
    compiled = compile_where("kprobe:vfs_read { @[probe] = sum(arg2); }", kprobes=False, fentries=True)
    (program,) = compiled.programs
    assert program.prog_type == BpfProgType.TRACING
    assert program.expected_attach_type == BpfAttachType.TRACE_FENTRY
    assert program.attach_btf_id == btf.vmlinux().func("vfs_read").id
    assert 16 in context_offsets(compiled)                  # arg2: the third u64 of the context
    assert "kprobe:vfs_read" in compiled.probe_names.values()   # named as written
    assert program.attach_points[0].attach_kind == "fentry"  # and attached as what it became


def test_kretprobe_becomes_fexit_with_a_typed_retval():
    compiled = compile_where("kretprobe:vfs_read { @ = hist(retval); }", kprobes=False, fentries=True)
    (program,) = compiled.programs
    assert program.expected_attach_type == BpfAttachType.TRACE_FEXIT
    assert 32 in context_offsets(compiled)                  # after vfs_read's 4 arguments


def test_fentry_becomes_kprobe_where_fentry_is_refused():
    compiled = compile_where("fentry:vfs_read { @ = sum(args.count); }", kprobes=True, fentries=False)
    (program,) = compiled.programs
    assert program.prog_type == BpfProgType.KPROBE and program.attach_btf_id == 0
    assert 96 in context_offsets(compiled)                  # count is rdx
    assert compiled.programs[0].attach_points[0].provider == "kprobe"


@pytest.mark.parametrize("kprobes, fentries", [(True, True), (False, False)])
def test_no_move_when_the_written_kind_works_or_neither_does(kprobes, fentries):
    compiled = compile_where("kprobe:vfs_read { @ = count(); }", kprobes, fentries)
    assert compiled.programs[0].prog_type == BpfProgType.KPROBE


def test_offsets_stay_kprobes():
    compiled = compile_where("kprobe:vfs_read+0 { @ = count(); }", kprobes=False, fentries=True)
    assert compiled.programs[0].prog_type == BpfProgType.KPROBE
