"""The provider registry and the perf-counter providers (software:, hardware:), front end only:
spellings, resolving, default counts, wildcards, errors, listing, the program they compile to."""

import pytest

from pybpf import ast, providers
from pybpf.compiler import compile_source
from pybpf.diagnostics import CompileError, Span
from pybpf.listing import ListingError, describe_probe, list_probes
from pybpf.program import PerfEvent
from pybpf.providers.base import ProbeGroup
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.perf_event import PerfHwId, PerfSwId, PerfType


def resolve(text: str) -> ProbeGroup:
    head, _, target = text.partition(":")
    provider = providers.find(head)
    group = ProbeGroup(ast.Probe(Span(1, 1, 1, 1), (), None, ()), provider)
    provider.resolve(text, target, group)
    return group


def test_every_spelling_finds_one_provider():
    spellings = [s for p in providers.PROVIDERS for s in p.spellings]
    assert len(spellings) == len(set(spellings))
    assert all(providers.find(s).name == p.name for p in providers.PROVIDERS for s in p.spellings)
    assert providers.find("s") is providers.named("software")
    assert providers.find("h") is providers.named("hardware")


@pytest.mark.parametrize("text,target,event", [
    ("software:page-faults:1", "page-faults:1", PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, 1)),
    ("s:faults", "faults", PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, 100)),
    ("s:cs", "cs", PerfEvent(PerfType.SOFTWARE, PerfSwId.CONTEXT_SWITCHES, 1000)),
    ("software:cpu-clock:1e6", "cpu-clock:1e6", PerfEvent(PerfType.SOFTWARE, PerfSwId.CPU_CLOCK, 1000000)),
    ("s:major-faults", "major-faults", PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS_MAJ, 1)),
    ("hardware:cycles:1000000", "cycles:1000000", PerfEvent(PerfType.HARDWARE, PerfHwId.CPU_CYCLES, 1000000)),
    ("h:branches", "branches", PerfEvent(PerfType.HARDWARE, PerfHwId.BRANCH_INSTRUCTIONS, 100000)),
    ("h:frontend-stalls", "frontend-stalls",
     PerfEvent(PerfType.HARDWARE, PerfHwId.STALLED_CYCLES_FRONTEND, 1000000)),
])
def test_events_with_their_counts_or_bpftrace_defaults(text, target, event):
    (point,) = resolve(text).points
    assert (point.target, point.perf_event, point.attach_kind) == (target, event, "perf_counter")


def test_a_wildcard_expands_over_event_names():
    points = resolve("s:*-faults:10").points
    assert [p.target for p in points] == ["alignment-faults:10", "emulation-faults:10", "major-faults:10",
                                          "minor-faults:10", "page-faults:10"]
    assert {p.perf_event.sample_period for p in points} == {10}


@pytest.mark.parametrize("text,message", [
    ("software:nope", "unknown software event: nope (pybpf -l 'software:*' lists them)"),
    ("hardware:page-faults", "unknown hardware event: page-faults"),
    ("software:faults:0", "invalid software probe: software:faults:0 (COUNT must be a positive integer)"),
    ("software:faults:x", "COUNT must be a positive integer"),
    ("s:zz*", "software event not found: zz*"),
])
def test_bad_events(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        resolve(text)


def test_listed_by_provider_and_by_default():
    assert list_probes("software:*")[:2] == ["software:alignment-faults:", "software:bpf-output:"]
    assert len(list_probes("s:*")) == 11 and len(list_probes("hardware:*")) == 10
    assert list_probes("h:*cycles") == ["hardware:bus-cycles:", "hardware:cpu-cycles:", "hardware:ref-cycles:"]
    assert "software:page-faults:" in list_probes("page-faults")


def test_no_arguments_to_describe():
    with pytest.raises(ListingError, match="does not describe software"):
        describe_probe("software:faults")


@pytest.mark.parametrize("source", ["software:page-faults:1 { @[comm] = count(); }",
                                    "hardware:cycles:1000000 { @[cpu] = count(); }"])
def test_compiles_to_a_perf_event_program(source):
    (program,) = compile_source(source).programs
    assert program.prog_type == BpfProgType.PERF_EVENT and program.section.startswith("perf_event/")
    assert program.attach_points[0].attach_kind == "perf_counter"


@pytest.mark.parametrize("builtin", ["args.x", "arg0", "retval", "func"])
def test_a_perf_sample_has_no_arguments(builtin):
    with pytest.raises(CompileError, match="can only be used with"):
        compile_source(f"software:faults {{ @ = {builtin}; }}")
