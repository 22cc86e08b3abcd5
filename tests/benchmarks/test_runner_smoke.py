"""A smoke run of the benchmark runner: it runs, measures something in every section, writes its JSON
and prints its table. No timing is asserted: benchmarks are measured, never pass/fail on a time."""

import json
import os
import shutil

import pytest

from benchmarks import run


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="the runner reads program stats "
                    "with bpftool (apt-get install bpftool)")
@pytest.mark.skipif(shutil.which("cc") is None, reason="the runner builds its syscall loop with cc")
def test_quick_run_writes_results(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["machine"]["kernel"]
    assert results["startup"]["pybpf"]["warm"]["wall_s"] > 0
    assert results["startup"]["pybpf"]["cold"]["wall_min_s"] > 0
    opensnoop = results["first_event"]["opensnoop"]
    assert opensnoop["pybpf warm"]["first_s"] > 0 and opensnoop["pybpf cold"]["rss_kib"] > 0
    assert results["load_average_start"] and results["load_average_end"]
    assert results["cost_ns"]["count by comm"]["pybpf"] > 0
    assert "pybpf_above_floor" in results["cost_ns"]["count by comm"]
    if shutil.which("clang") and os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        # the hand-written C reference, built and measured beside the tools
        assert results["cost_ns"]["count by comm"]["c"] > 0
    assert results["syscall_overhead"]["pybpf"]["its own calls"] is not None
    assert results["streaming"]["pybpf"]["delivered"] + results["streaming"]["pybpf"]["lost"] > 0
    assert all(row["pybpf_output_lines"] > 0 for row in results["map_output"].values())
    assert {"parse", "check", "lower", "llvm", "load"} <= set(results["compile"]["pybpf_stages"])
    table = capsys.readouterr().out
    for label in ("start-up warm wall", "opensnoop first event, pybpf warm", "above floor",
                  "ns added per syscall", "stream", "map (SIGINT to exit)", "compile"):
        assert label in table
