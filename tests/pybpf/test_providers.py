"""The provider registry and the perf-event providers (software:, hardware:, watchpoint:), front end
only: spellings, resolving, default counts, wildcards, errors, listing, the program they compile to."""

import pytest

from pybpf import ast, providers
from pybpf.compiler import CompileOptions, compile_source
from pybpf.diagnostics import CompileError, Span
from pybpf.listing import describe_probe, list_probes
from pybpf.program import CompiledProgram, PerfEvent
from pybpf.providers.base import ProbeGroup
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.perf_event import HwBreakpoint, PerfHwId, PerfSwId, PerfType


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
    assert describe_probe("software:faults") == describe_probe("hardware:cycles") == []


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


@pytest.mark.parametrize("text,length,bp_type", [("watchpoint:0x1000:8:w", 8, HwBreakpoint.W),
                                                 ("w:4096:4:rw", 4, HwBreakpoint.RW),
                                                 ("asyncwatchpoint:0x1000:1:x", 1, HwBreakpoint.X)])
def test_watchpoints(text, length, bp_type):
    (point,) = resolve(text).points
    assert point.perf_event == PerfEvent(PerfType.BREAKPOINT, 0, 1, config1=0x1000, config2=length,
                                         bp_type=bp_type)
    assert point.attach_kind == "perf_counter"


@pytest.mark.parametrize("text,message", [("watchpoint:0:8:w", "ADDR must be a non-zero address"),
                                          ("watchpoint:zz:8:w", "ADDR must be a non-zero address"),
                                          ("watchpoint:0x1000:3:w", "LEN must be 1, 2, 4 or 8"),
                                          ("watchpoint:0x1000:8:", "MODE must be a combination of r, w and x"),
                                          ("watchpoint:0x1000:8:ww", "MODE must be"),
                                          ("watchpoint:0x1000:8:q", "MODE must be")])
def test_bad_watchpoints(text, message):
    with pytest.raises(ValueError, match=message):
        resolve(text)


def test_a_watchpoint_watches_the_process_given():
    source = "watchpoint:0x1000:8:w { @ = count(); }"
    with pytest.raises(CompileError, match="watchpoint probes watch one process: give its id with -p PID"):
        compile_source(source)
    compiled = compile_source(source, options=CompileOptions(pid=4321))
    (program,) = compiled.programs
    assert program.attach_points[0].perf_event.pid == 4321
    assert program.prog_type == BpfProgType.PERF_EVENT
    assert CompiledProgram.from_data(compiled.to_data()).programs == compiled.programs   # as cached
