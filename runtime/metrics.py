"""A running script's maps in the Prometheus text format, read when Prometheus scrapes.

    collector = SessionCollector(session, max_series=10_000)  # or pybpf.metrics.Collector(trace)
    server = serve_metrics(collector, ("127.0.0.1", 9100))    # bound and serving, no map samples yet
    session.start()                                         # GET /metrics reads every map, now
    while session.poll(0.2):
        pass
    server.close()                                          # before session.stop()

One metric family per map, named `pybpf_<map name>` (`@` alone: `pybpf_map`); key parts become
labels `key` (one part) or `key0`, `key1`, ... (tuples flattened), a record's fields labels of their names (`@opens[(comm=comm,
path=...)]`: `comm`, `path`; pybpf.mapkinds.base.key_labels names them). Counts,
sums, min, max and integer values are gauges (a script may clear() or zero() them); avg and stats
maps are summaries (`_count`, `_sum`) with the average as printed in a `_average` gauge; hist and
lhist maps are histograms whose `le` is each bucket's inclusive upper bound, with `_count` and no
`_sum` (the kernel keeps no sum); string and tuple values are info metrics (`value` labels, sample
1). At most `max_series` keys of a map are served, the top ones by value (read a batch at a time
and kept in a heap: a big map is never held whole), and `pybpf_series_dropped{map}` counts the
rest. Beside the maps, the tracer's own metrics (tracer_families): lost events, each map's
entries against its max_entries, the probes attached, and each program's run time and count when
the kernel keeps them (kernel.bpf_stats_enabled=1). docs/metrics.md has the tables.

Nothing polls in the background: the server's render thread calls `SessionCollector.collect()`,
which reads the maps with independent bpf() syscalls on the session's fds while the host's loop
polls the ring buffer, holding the session's `reading` lock, which Session.close() takes before it
releases the fds. Before the session is started and after it is closed (or the collector is)
a scrape gets no pybpf samples. The HTTP side, its limits and why: pybpf.runtime.metrics_server.
"""

from __future__ import annotations

import heapq
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import compress
from typing import NamedTuple

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from pybpf.mapkinds import kind_for
from pybpf.mapkinds.base import Entries, key_labels
from pybpf.program import HelperErrorCount, MapSpec
from pybpf.runtime.loader import prog_info
from pybpf.runtime.helper_errors import by_helper, map_full
from pybpf.runtime.maps import MapBatch, Prefilter
from pybpf.runtime.metrics_server import MAX_CONNECTIONS, TIMEOUT_S, ScrapeServer, UnixListener, listen_tcp
from pybpf.runtime.output import key_order
from pybpf.runtime.values import escape_bytes, text_of

PREFIX = "pybpf_"
DEFAULT_MAX_SERIES = 10_000
BPF_STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_]")
_PREFIX = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def check_prefix(prefix: str) -> str:
    """The prefix of every family's name, when it can start a Prometheus metric name; ValueError."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"not a metric name prefix: {prefix!r} (letters, digits and _, not "
                         f"starting with a digit)")
    return prefix


def check_max_series(max_series: int) -> int:
    if max_series < 1:
        raise ValueError(f"the series of a map must be at least 1, not {max_series}")
    return max_series


def metric_name(map_name: str, prefix: str = PREFIX) -> str:
    """`@opens` -> `pybpf_opens`, `@` -> `pybpf_map`."""
    return prefix + (_NOT_IN_NAME.sub("_", map_name.lstrip("@")) or "map")


def map_families(spec: MapSpec, entries: Entries, prefix: str = PREFIX) -> list[Metric]:
    """The metric families of one map's entries (as Session.read_map returns them): its kind's
    (pybpf.mapkinds), with the keys flattened into labels."""
    keyed = [(_flatten(key), value) for key, value in entries]
    call = f"{spec.kind.value}()" if spec.kind.is_aggregation else "values"
    doc = f"{spec.name}: {call} of the pybpf script"
    return kind_for(spec.kind).metric_families(spec, metric_name(spec.name, prefix), doc, key_labels(spec.key),
                                               keyed, _flatten)


def helper_error_families(counts: list[HelperErrorCount], prefix: str = PREFIX) -> list[Metric]:
    """The tracer's own counters of failed helper calls (Session.helper_errors()):
    `pybpf_helper_errors_total{helper}` for every helper the program checks, and
    `pybpf_map_full_total{map}`, the updates dropped because the map was full, for every map the
    program inserts into; 0 until one fails, so an alert has a series to watch."""
    errors = CounterMetricFamily(prefix + "helper_errors", "BPF helper calls of the pybpf script "
                                 "that failed (pybpf -k shows where)", labels=["helper"])
    for helper, n in sorted(by_helper(counts).items()):
        errors.add_metric([helper], n)
    full = CounterMetricFamily(prefix + "map_full", "map updates the pybpf script lost because the "
                               "map was full (raise max_map_keys)", labels=["map"])
    for name, n in sorted(map_full(counts).items()):
        full.add_metric([name], n)
    return [errors, full]


def _flatten(parts: tuple) -> list[str]:
    out: list[str] = []
    for part in parts:
        if isinstance(part, tuple):
            out.extend(_flatten(part))
        else:
            out.append(escape_bytes(part) if isinstance(part, str) else text_of(part))   # bools: true
    return out


class TopEntries(NamedTuple):
    """What top_entries kept of a map: `entries` (at most max_series), the map elements read
    (a hist key has one per bucket) and the keys left out."""
    entries: Entries
    elements: int
    dropped: int


def top_entries(spec: MapSpec, read: Callable[[Prefilter], Iterable[MapBatch]], max_series: int) -> TopEntries:
    """The max_series greatest entries by the kind's order (count, total, average: as printed),
    by key order for values that have none (strings, tuples), selected while the map is read:
    `read(prefilter)` gives its batches (Session.map_batches), and once max_series entries are
    kept, the prefilter drops every entry that cannot beat them before its key is decoded. At
    most 2 x max_series entries and one batch are held at a time."""
    sort_key = kind_for(spec.kind).entry_sort_key(spec)
    order = (lambda e: key_order(e[0])) if sort_key is None else sort_key
    select = heapq.nsmallest if sort_key is None else heapq.nlargest
    kept: Entries = []
    beats_bar: Callable[[object], bool] | None = None    # once max_series were kept: beats their last?

    def prefilter(entries: list) -> Iterable:
        return entries if beats_bar is None else compress(entries, map(beats_bar, map(order, entries)))

    elements = seen = 0
    for batch in read(prefilter if sort_key is not None else None):
        elements += batch.elements
        seen += batch.seen
        kept += prefilter(batch.entries)
        if len(kept) >= 2 * max_series:
            kept = select(max_series, kept, key=order)
            bar = order(kept[-1])
            beats_bar = bar.__gt__ if sort_key is None else bar.__lt__
    kept = select(max_series, kept, key=order)
    return TopEntries(kept, elements, seen - len(kept))


def run_stats_enabled() -> bool:
    """Whether kernel.bpf_stats_enabled is 1: the kernel counts each program's runs and run time."""
    try:
        with open(BPF_STATS_SYSCTL) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


class SessionCollector:
    """A prometheus_client collector of a Session: its maps (`maps`: the names to serve, None:
    all) with at most `max_series` keys each, and the tracer's own metrics, each family named
    with `prefix`. ValueError for a map the program does not have, a max_series under 1 or a
    prefix no metric name can start with."""

    def __init__(self, session, maps: Iterable[str] | None = None,
                 max_series: int = DEFAULT_MAX_SERIES, prefix: str = PREFIX) -> None:
        specs = {spec.name: spec for spec in session.compiled.maps}
        wanted = list(specs) if maps is None else list(maps)
        unknown = [name for name in wanted if name not in specs]
        if unknown:
            raise ValueError(f"no map {', '.join(unknown)} in the script; its maps: "
                             f"{', '.join(sorted(specs)) or 'none'}")
        self._session = session
        self._specs = [specs[name] for name in sorted(set(wanted))]
        self.max_series = check_max_series(max_series)
        self.prefix = check_prefix(prefix)
        self._closed = False

    def describe(self) -> list[Metric]:
        """Nothing: the families are known at a scrape only (register() reads no map)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Read the maps now and yield their families, then the tracer's; nothing before the
        session is started, nor once it or this collector is closed."""
        session = self._session
        with session.reading:
            families = [] if self._closed or session.loaded is None else \
                self._read(session) + helper_error_families(session.helper_errors(), self.prefix)
        yield from families

    def close(self) -> None:
        """Stop reading: once this returns, no scrape touches the session again (a read in
        progress is waited for). A closed session needs no close()."""
        with self._session.reading:
            self._closed = True

    def _read(self, session) -> list[Metric]:
        families: list[Metric] = []
        p = self.prefix
        dropped = GaugeMetricFamily(p + "series_dropped", f"keys of the map left out of its family: "
                                    f"only the top {self.max_series} are served", labels=["map"])
        entries = GaugeMetricFamily(p + "map_entries", "elements in the map now (a hist key has one "
                                    "per bucket)", labels=["map"])
        max_entries = GaugeMetricFamily(p + "map_max_entries", "elements the map can hold; updates "
                                        "beyond are dropped", labels=["map"])
        for spec in self._specs:
            read = top_entries(spec, lambda prefilter: session.map_batches(spec, prefilter), self.max_series)
            families.extend(map_families(spec, read.entries, p))
            dropped.add_metric([spec.name], read.dropped)
            if not spec.is_array:          # a map without a key is an array: it never fills
                entries.add_metric([spec.name], read.elements)
                max_entries.add_metric([spec.name], spec.max_entries)
        return families + [dropped, entries, max_entries] + tracer_families(session, p)


def tracer_families(session, prefix: str = PREFIX) -> list[Metric]:
    """The tracer's metrics that are not about one map: events lost, probes attached, and each
    program's runs and run time when the kernel counts them."""
    lost = CounterMetricFamily(prefix + "events_lost", "events the ring buffer had no room for "
                               "(the count pybpf prints at exit)", value=session.lost_events())
    attached = GaugeMetricFamily(prefix + "probes_attached", "probes attached now",
                                 value=session.probes_attached)
    families: list[Metric] = [lost, attached]
    infos = [(program, prog_info(session.loaded.prog_fds[program.section]))
             for program in session.compiled.programs]
    # The sysctl, or BPF_ENABLE_STATS held by another process (the sysctl does not show it): a
    # count the kernel kept. Zeros that only mean "not counted" are left out.
    if run_stats_enabled() or any(info.run_cnt for _, info in infos):
        labels = ["program", "probe"]
        seconds = CounterMetricFamily(prefix + "program_run_seconds", "time the BPF program ran in the "
                                      "kernel, counted while kernel.bpf_stats_enabled=1", labels=labels)
        runs = CounterMetricFamily(prefix + "program_runs", "runs of the BPF program, counted while "
                                   "kernel.bpf_stats_enabled=1", labels=labels)
        for program, info in infos:
            points = program.attach_points
            probe = points[0].name + (f" (+{len(points) - 1} more)" if len(points) > 1 else "")
            seconds.add_metric([program.section, probe], info.run_time_ns / 1e9)
            runs.add_metric([program.section, probe], info.run_cnt)
        families += [seconds, runs]
    return families


class MetricsServer:
    """The endpoint: `address` as bound ((host, port), or the Unix socket's path); close() stops
    serving and detaches the collector from the session, waiting for no client."""

    def __init__(self, collector: SessionCollector, server: ScrapeServer, address, unix: UnixListener | None):
        self.collector = collector
        self._server = server
        self._unix = unix
        self.address = address

    @property
    def where(self) -> str:
        """`http://127.0.0.1:9100/metrics`, `unix:/run/pybpf.sock`: for a person to read."""
        if self._unix is not None:
            return f"unix:{self.address}"
        host, port = self.address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def close(self) -> None:
        self.collector.close()        # waits for a map read in progress, bounded by max_series
        self._server.close()
        if self._unix is not None:
            self._unix.unlink()


def make_registry(collector: SessionCollector) -> CollectorRegistry:
    """Our own registry, not prometheus_client's global one: the collector's families, and the
    process collector (process_cpu_seconds_total, process_resident_memory_bytes, ...: pybpf's own
    user-space cost, one read of /proc/self per scrape). No platform or GC collectors: constant or
    noise."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def serve_metrics(collector: SessionCollector, address: tuple[str, int] | str, *,
                  max_connections: int = MAX_CONNECTIONS, timeout_s: float = TIMEOUT_S,
                  warn=None) -> MetricsServer:
    """Serve the collector's families on GET /metrics at `address`, (host, port) or a Unix
    socket's path, from two daemon threads. Binding first lets a busy port fail before anything
    is loaded. `warn(text)` gets one line per kind of server failure (default: stderr). OSError if
    the address cannot be bound (e.g. EADDRINUSE) or the threads cannot start."""
    registry = make_registry(collector)
    unix = UnixListener(address) if isinstance(address, str) else None
    listener = unix.socket if unix else listen_tcp(*address)
    try:
        server = ScrapeServer(listener, lambda: list(registry.collect()), max_connections=max_connections,
                              timeout_s=timeout_s, warn=warn or _warn)
    except OSError:
        listener.close()
        if unix:
            unix.unlink()
        raise
    return MetricsServer(collector, server, address if unix else listener.getsockname()[:2], unix)


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int] | str:
    """`9100`, `0.0.0.0:9100`, `[::1]:9100` -> (host, port); `unix:/run/pybpf.sock` -> the path.
    ValueError when it is none of these."""
    if text.startswith("unix:"):
        if not text[5:]:
            raise ValueError("unix: needs the socket's path (unix:/run/pybpf-metrics.sock)")
        return text[5:]
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = default_host
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif not host or ":" in host:
        raise ValueError(f"not [HOST:]PORT or unix:PATH: {text!r} (an IPv6 host goes in brackets: [::1]:9100)")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"not a port number from 0 to 65535: {port_text!r}")
    return host, int(port_text)
