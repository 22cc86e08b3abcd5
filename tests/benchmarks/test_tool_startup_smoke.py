"""A smoke run of the opensnoop start-up benchmark: it measures every run it makes (no timing is
asserted: benchmarks measure, never pass or fail on a time)."""

import pytest

from benchmarks import tool_startup


@pytest.mark.kernel
def test_one_run_of_each_measures_the_time_to_the_header():
    results = tool_startup.measure(1)
    assert {"pybpf cold cache", "pybpf warm cache"} <= set(results)
    assert all(run is not None and run > 0 for runs in results.values() for run in runs)
