"""pybpf.metrics.Collector in a host application's own prometheus_client registry: a live trace's
maps and tracer metrics at each scrape, the maps chosen, capped and prefixed, nothing once the
trace has stopped; the host serves the registry with prometheus_client's own tools."""

import os
import threading

import pytest

import pybpf

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from pybpf.metrics import Collector  # noqa: E402
from test_library import COMM, own_comm  # noqa: E402,F401  (own_comm: this process named COMM)

PROGRAM = ('BEGIN { $i = 0; while ($i < 20) { @sizes[$i] = $i; $i++; } } '
           f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @calls[comm] = count(); }}')


def samples(registry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for s in family.samples}


@pytest.mark.kernel
def test_a_host_registry_scrapes_a_trace(own_comm):
    program = pybpf.compile(PROGRAM)
    trace = program.run()
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="no map @missing"):
        Collector(trace, maps=["@missing"])
    # two collectors of one trace, told apart by their prefixes
    registry.register(Collector(trace))
    registry.register(Collector(trace, maps=["@sizes"], max_series=5, prefix="app_tracer_"))
    assert not any(name.startswith(("pybpf_", "app_")) for name, _ in samples(registry))   # not started
    with trace:
        for _ in range(7):
            os.getppid()
        # a scrape from another thread while this one owns the trace, as a host's HTTP server does
        scraped = {}
        scraper = threading.Thread(target=lambda: scraped.update(samples(registry)))
        scraper.start()
        scraper.join()
    assert scraped[("pybpf_calls", (("key", COMM),))] == 7
    assert {k: v for k, v in scraped.items() if k[0] == "pybpf_sizes"} == {
        ("pybpf_sizes", (("key", str(i)),)): i for i in range(20)}
    assert {k: v for k, v in scraped.items() if k[0] == "app_tracer_sizes"} == {
        ("app_tracer_sizes", (("key", str(i)),)): i for i in range(15, 20)}
    assert scraped[("app_tracer_series_dropped", (("map", "@sizes"),))] == 15
    assert ("app_tracer_calls", (("key", COMM),)) not in scraped
    assert scraped[("pybpf_events_lost_total", ())] == 0
    assert scraped[("pybpf_probes_attached", ())] == 2
    assert not any(name.startswith(("pybpf_", "app_")) for name, _ in samples(registry))   # stopped
    assert trace.maps["@calls"][COMM] == 7          # the final values stay with the trace
