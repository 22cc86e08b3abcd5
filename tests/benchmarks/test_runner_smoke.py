"""A smoke run of the benchmark runner: it runs, measures something, writes its JSON. No timing
is asserted: benchmarks are measured, never pass/fail on a time."""

import json
import shutil

import pytest

from benchmarks import run


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="the runner reads program stats "
                    "with bpftool (apt-get install bpftool)")
def test_quick_run_writes_results(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["startup"]["pybpf"]["warm"]["wall_s"] > 0
    assert results["cost_ns"]["count by comm"]["pybpf"] > 0
    assert "start-up warm wall" in capsys.readouterr().out
