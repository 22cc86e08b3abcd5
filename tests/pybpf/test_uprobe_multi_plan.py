"""Which uprobes share one uprobe_multi link (pybpf.resources): the compiler is given the kernel's
answer (pybpf.features), and the compiled programs are checked (no kernel needed)."""

import pytest

from pybpf import elfsym
from pybpf.compiler import CompileOptions, compile_source
from pybpf.features import FixedFeatures
from pybpf.uapi.bpf import BpfAttachType

LIBRARY = r"""
__attribute__((noinline)) int lib_a(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) int lib_b(int x) { __asm__ volatile(""); return x + 2; }
__attribute__((noinline)) int lib_c(int x) { __asm__ volatile(""); return x + 3; }
"""


@pytest.fixture(scope="module")
def library(compile_c):
    return compile_c(LIBRARY, "-shared", "-fPIC")


def compiled(source: str, multi: bool = True):
    return compile_source(source, options=CompileOptions(
        features=FixedFeatures(uprobe_multi_links=multi)))


def test_a_wildcard_of_one_binary_is_one_program_with_cookies(library):
    functions = elfsym.matching_functions(library, "lib_*")
    (program,) = compiled(f"uprobe:{library}:lib_* {{ @[probe] = count(); }}").programs
    assert program.expected_attach_type == BpfAttachType.TRACE_UPROBE_MULTI
    assert [p.target.rpartition(":")[2] for p in program.attach_points] == functions
    assert {p.attach_kind for p in program.attach_points} == {"uprobe_multi"}
    assert len({p.cookie for p in program.attach_points}) == 3           # `probe`, by cookie


def test_return_probes_and_blocks_without_probe(library):
    (program,) = compiled(f"uretprobe:{library}:lib_* {{ @ = count(); }}").programs
    assert {p.attach_kind for p in program.attach_points} == {"uretprobe_multi"}
    assert {p.cookie for p in program.attach_points} == {0}


def test_func_by_cookie(library):
    (program,) = compiled(f"uprobe:{library}:lib_* {{ @[func] = count(); }}").programs
    assert program.expected_attach_type == BpfAttachType.TRACE_UPROBE_MULTI
    assert len({p.cookie for p in program.attach_points}) == 3


def test_uaddr_keeps_a_program_each(library):
    programs = compiled(f'uprobe:{library}:lib_* {{ @ = *uaddr("lib_a"); }}').programs
    assert len(programs) == 3
    assert {p.expected_attach_type for p in programs} == {0}
    assert {p.attach_points[0].attach_kind for p in programs} == {"uprobe"}


def test_without_uprobe_multi_a_perf_event_each(library):
    (program,) = compiled(f"uprobe:{library}:lib_* {{ @ = count(); }}", multi=False).programs
    assert program.expected_attach_type == 0
    assert {p.attach_kind for p in program.attach_points} == {"uprobe"}


def test_a_single_uprobe_stays_a_perf_event(library):
    (program,) = compiled(f"uprobe:{library}:lib_a {{ @ = count(); }}").programs
    assert program.attach_points[0].attach_kind == "uprobe"
