"""The compile driver: one list of passes of one shape, stopped after the first that reports errors."""

import pytest

from pybpf.compiler import (FRONT_END, PASSES, CompileOptions, Pass, PlannedScript, StageTimes,
                            compile_to_ir, run_passes)
from pybpf.diagnostics import CompileError, Span
from pybpf.features import FixedFeatures

OPTIONS = CompileOptions(features=FixedFeatures(kprobes=False, fentry=False))


def test_the_passes_are_the_stages_shown():
    assert [p.name for p in PASSES] == ["parse", "preamble", "settings", "probes", "check", "layout",
                                        "lower"]


@pytest.mark.parametrize("source, ran", [
    ("BEGIN { @x = ; }", ["parse"]),
    ("macro m($a) { $a } BEGIN { m(1); }", ["parse", "preamble"]),
    ("config = { nosuchsetting = 1 } BEGIN { }", ["parse", "preamble", "settings"]),
    ("nosuchkind:foo { exit(); }", ["parse", "preamble", "settings", "probes"]),
    ("BEGIN { @x = nosuchfunction(); }", ["parse", "preamble", "settings", "probes", "check"]),
    ("BEGIN { @x = count(); }", ["parse", "preamble", "settings", "probes", "check", "layout",
                                 "lower"]),
])
def test_each_pass_is_timed_and_the_first_with_errors_is_the_last_run(source, ran):
    times = StageTimes()
    try:
        compile_to_ir(source, options=OPTIONS, times=times)
    except CompileError as e:
        assert len(e.diagnostics.items) == 1
    assert list(times.seconds) == ran


def test_a_pass_is_one_entry_in_the_list():
    seen = []

    def count_probes(planned: PlannedScript, diags, options) -> PlannedScript:
        seen.append(len(planned.checked.program.probes))
        if len(planned.checked.program.probes) > 1:
            diags.error("one probe only", Span(1, 1, 1, 2))
        return planned

    passes = FRONT_END + (Pass("count", count_probes),)
    times = StageTimes()
    assert isinstance(run_passes(passes, "BEGIN { exit(); }", "stdin", OPTIONS, times), PlannedScript)
    with pytest.raises(CompileError, match="one probe only"):
        run_passes(passes, "BEGIN { exit(); } END { exit(); }", "stdin", OPTIONS, StageTimes())
    assert seen == [1, 2] and "count" in times.seconds
