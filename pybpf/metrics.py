"""A running trace's maps and the tracer's own metrics, as a prometheus_client collector.

    import pybpf
    from prometheus_client import CollectorRegistry, generate_latest
    from pybpf.metrics import Collector

    trace = pybpf.compile('tracepoint:syscalls:sys_enter_openat { @opens[comm] = count(); }').run()
    registry = CollectorRegistry()
    with trace:
        registry.register(Collector(trace, maps=["@opens"], max_series=100))
        trace.wait(1.0)
        print(generate_latest(registry).decode())    # pybpf_opens{key="bash"} 12.0, ...

Each scrape (each `collect()`) reads the maps from the kernel then: nothing polls in the
background, and the host's thread that serves the registry may run beside the one that polls the
trace. Before the trace starts and once it has stopped, the collector yields nothing. Needs the
prometheus_client package (`pip install 'pybpf[metrics]'`). What each map and tracer metric
becomes: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Union

from pybpf.api import Trace
from pybpf.runtime.metrics import DEFAULT_MAX_SERIES, PREFIX, SessionCollector

if TYPE_CHECKING:
    from pybpf.runtime.session import Session

__all__ = ["DEFAULT_MAX_SERIES", "PREFIX", "Collector"]


class Collector(SessionCollector):
    """The metrics of `source`, a pybpf.Trace (or the run side's Session the CLI runs): one family
    per map named `prefix` + the map's name (`@opens` -> `pybpf_opens`), its keys as labels, and
    the tracer's own families (`pybpf_events_lost_total`, `pybpf_probes_attached`,
    `pybpf_map_entries{map}`, `pybpf_map_max_entries{map}`, `pybpf_series_dropped{map}`, and with
    kernel.bpf_stats_enabled=1 `pybpf_program_run_seconds_total` and `pybpf_program_runs_total`).

    `maps`: the names of the maps to serve ('@opens'), None for all. `max_series`: the most keys
    served of one map, the greatest by value (count, total, average, a histogram's count); the
    rest are counted in `pybpf_series_dropped{map}`. `prefix`: the start of every family's name.
    Raises ValueError for a map the program does not have, a max_series under 1, or a prefix that
    cannot start a metric name."""

    def __init__(self, source: Union[Trace, "Session"], *, maps: Iterable[str] | None = None,
                 max_series: int = DEFAULT_MAX_SERIES, prefix: str = PREFIX) -> None:
        session = source._session if isinstance(source, Trace) else source
        super().__init__(session, maps, max_series, prefix)
