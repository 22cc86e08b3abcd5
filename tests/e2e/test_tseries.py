"""tseries() end to end (bpftrace 0.26's time-series aggregation, its stdlib reference): values
folded per interval in the kernel, then printed as bpftrace's graph or its JSON records."""

import json
import re

import pytest

from e2e_helpers import run_pybpf

# All in BEGIN: one 10s interval (a boundary falls inside it about once in 10^5 runs).
FOLDS = ('BEGIN { @sum = tseries(1, 10s, 3, "sum"); @sum = tseries(2, 10s, 3, "sum"); '
         '@last = tseries(7, 10s, 3); @last = tseries(4, 10s, 3); '
         '@avg["a"] = tseries(4, 10s, 3, "avg"); @avg["a"] = tseries(7, 10s, 3, "avg"); '
         '@max = tseries(-3, 10s, 3, "max"); @max = tseries(-9, 10s, 3, "max"); exit(); }')


@pytest.mark.kernel
def test_each_aggregation_folds_an_interval():
    result = run_pybpf(["-f", "json", "-e", FOLDS])
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()[1:]]
    assert {r["type"] for r in records} == {"tseries"}
    values = {name: data for r in records for name, data in r["data"].items()}
    assert [p["value"] for p in values["@sum"]] == [3]
    assert [p["value"] for p in values["@last"]] == [4]
    assert [p["value"] for p in values["@avg"]["a"]] == [5]        # (4 + 7) / 2, truncated
    assert [p["value"] for p in values["@max"]] == [-3]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d0\.000000000", values["@sum"][0]["interval_start"])


@pytest.mark.kernel
def test_text_graph_as_bpftrace_prints_it():
    result = run_pybpf(["-e", FOLDS])
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    lines = out[out.index("@avg[a]:"):]
    # a flat line: the scale one below and above, the point in the middle, whole seconds
    assert lines[1] == "         4" + " " * 51 + "6"
    assert lines[2] == "hh:mm:ss |" + "_" * 51 + "|"
    assert re.fullmatch(r"\d\d:\d\d:\d0 \|" + " " * 25 + r"\*" + " " * 25 + r"\| 5", lines[3])
    assert lines[4] == "         v" + "_" * 51 + "v"
    assert lines[5:7] == ["         4" + " " * 51 + "6", ""]


@pytest.mark.kernel
def test_intervals_follow_each_other_up_to_num_intervals():
    # an interval probe every 20ms counts into 100ms intervals for about 0.7s: at most 4 are
    # kept, consecutive, each 100ms after the one before, the last one possibly partial
    result = run_pybpf(["-f", "json", "-e", 'i:ms:20 { @n = tseries(1, 100ms, 4, "sum"); } '
                        'i:ms:700 { exit(); }'])
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines() if '"tseries"' in line]
    points = record["data"]["@n"]
    assert 2 <= len(points) <= 4
    starts = [int(p["interval_start"][-9:-6]) for p in points]     # the milliseconds
    assert all((b - a) % 1000 == 100 for a, b in zip(starts, starts[1:]))
    assert all(1 <= p["value"] <= 6 for p in points)


def test_arguments_are_checked():
    for source, message in [
            ('BEGIN { @ = tseries(1, 0, 3); }', "tseries: interval_ns must be a positive duration"),
            ('BEGIN { @ = tseries(1, 1s, 0); }', "tseries: num_intervals must be between 1 and 10000"),
            ('BEGIN { @ = tseries(1, 1s, 3, "median"); }', "tseries: the aggregation must be a string "
                                                          "literal, one of 'avg', 'max', 'min', 'sum'"),
            ('BEGIN { @ = tseries("x", 1s, 3); }', "tseries() expects an integer argument"),
            ('BEGIN { @ = tseries(1, 1s, 3); @ = tseries(1, 2s, 3); }',
             "Different tseries intervals or aggregations in a single map unsupported: @")]:
        result = run_pybpf(["--verify-only", "-e", source])
        assert result.returncode == 1 and message in result.stderr, (source, result.stderr)
