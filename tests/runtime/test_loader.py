"""Loading objects into the real kernel."""

import os

import pytest
from bpfobj import MapDecl, build_object, program, standard_maps

from pybpf.backend.objspec import parse_object
from pybpf.program import EVENTS_MAP, CompiledProgram, BpfProgramSpec
from pybpf.runtime.errors import NotSupportedError, VerifierError
from pybpf.runtime.loader import load, object_name, prog_info
from pybpf.uapi.bpf import BpfMapType, BpfProgType

pytestmark = pytest.mark.kernel


def compiled(elf: bytes, *programs: tuple[str, int]) -> CompiledProgram:
    return CompiledProgram(elf, parse_object(elf), tuple(BpfProgramSpec(section, prog_type, ()) for section, prog_type in programs), ())


def load_elf(elf: bytes, *programs: tuple[str, int]):
    return load(parse_object(elf), compiled(elf, *programs))


def test_object_name_is_short_and_plain():
    assert object_name("tracepoint/sys-enter:openat.x") == b"tracepoint_sys_"
    assert object_name("__pybpf_events") == b"__pybpf_events"


def test_maps_and_programs_get_fds_and_names():
    elf = build_object(standard_maps() + [MapDecl("counts", BpfMapType.PERCPU_HASH, 8, 8, 16)],
                       {"tracepoint/rt_count": program(count="counts", emit=(1, 0))})
    with load_elf(elf, ("tracepoint/rt_count", BpfProgType.TRACEPOINT)) as loaded:
        assert set(loaded.map_fds) == {"counts", EVENTS_MAP, "__pybpf_lost", "__pybpf_start"}
        info = prog_info(loaded.prog_fds["tracepoint/rt_count"])
        assert info.name == b"rt_count"
        assert info.type == BpfProgType.TRACEPOINT
        assert info.nr_map_ids == 3          # the map references were patched to these maps' fds
    assert loaded.map_fds == {} and loaded.prog_fds == {}
    loaded.close()                           # idempotent


def test_verifier_rejection_carries_the_log():
    # Reading the context out of bounds: the verifier refuses with its reason in the log.
    elf = build_object([], {"tracepoint/rt_bad": "\nentry:\n  %p = getelementptr i8, ptr %ctx, i64 100000\n"
                                                 "  %v = load i64, ptr %p\n  ret i64 %v"})
    with pytest.raises(VerifierError) as caught:
        load_elf(elf, ("tracepoint/rt_bad", BpfProgType.TRACEPOINT))
    error = caught.value
    assert error.cmd == "PROG_LOAD" and error.program == "rt_bad"
    assert error.summary.splitlines()[-1].startswith("dereference of modified ctx ptr")
    assert len(error.log) > len(error.summary)
    assert error.summary in str(error)


def test_unknown_program_type_is_not_supported():
    elf = build_object([], {"tracepoint/rt_x": "\nentry:\n  ret i64 0"})
    with pytest.raises(NotSupportedError, match="program type 999"):
        load_elf(elf, ("tracepoint/rt_x", 999))


def test_fentry_without_btf_is_refused_with_the_verifier_reason():
    elf = build_object([], {"fentry/rt_x": "\nentry:\n  ret i64 0"})
    with pytest.raises((VerifierError, NotSupportedError)):
        load_elf(elf, ("fentry/rt_x", BpfProgType.TRACING))


def test_failed_load_releases_the_maps_it_created():
    elf = build_object([MapDecl("m", BpfMapType.HASH, 8, 8, 4)], {"tracepoint/rt_x": "\nentry:\n  ret i64 0"})
    fds_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(NotSupportedError):
        load_elf(elf, ("tracepoint/rt_x", 999))
    assert len(os.listdir("/proc/self/fd")) == fds_before


def test_load_is_fast():
    import time
    elf = build_object(standard_maps(), {"tracepoint/rt_x": program(emit=(1, 0))})
    spec = parse_object(elf)
    started = time.perf_counter()
    for _ in range(20):
        load(spec, compiled(elf, ("tracepoint/rt_x", BpfProgType.TRACEPOINT))).close()
    assert (time.perf_counter() - started) / 20 < 0.05
