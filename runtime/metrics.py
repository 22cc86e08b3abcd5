"""A running script's maps in the Prometheus text format, read when Prometheus scrapes.

    server = serve_metrics(session, ("127.0.0.1", 9100)) # bound and serving, no map samples yet
    session.start()
    server.start()                                       # GET /metrics reads every map, now
    while session.poll(0.2):
        pass
    server.close()                                       # before session.stop()

One metric family per map, named `pybpf_<map name>` (`@` alone: `pybpf_map`); key parts become
labels `key` (one part) or `key0`, `key1`, ... (tuples flattened). Counts, sums, min, max and integer
values are gauges (a script may clear() or zero() them); avg and stats maps are summaries (`_count`,
`_sum`) with the average as printed in a `_average` gauge; hist and lhist maps are histograms whose
`le` is each bucket's inclusive upper bound, with `_count` and no `_sum` (the kernel keeps no sum);
string and tuple values are info metrics (`value` labels, sample 1). docs/metrics.md has the table.

Nothing polls in the background: the server's render thread calls `MapCollector.collect()`, which
reads the maps with independent bpf() syscalls on the session's fds while the host's loop polls
the ring buffer. Before start() and after close() a scrape gets no map samples: the session's fds
are read only between the two, and close() waits for a map read in progress (never for a client).
The HTTP side, its limits and why: pybpf.runtime.metrics_server.
"""

from __future__ import annotations

import re
import sys
import threading

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from pybpf.mapkinds import kind_for
from pybpf.mapkinds.base import Entries, label_names, label_width
from pybpf.program import HelperErrorCount, MapSpec
from pybpf.runtime.helper_errors import by_helper, map_full
from pybpf.runtime.metrics_server import MAX_CONNECTIONS, TIMEOUT_S, ScrapeServer, UnixListener, listen_tcp
from pybpf.runtime.values import escape_bytes

PREFIX = "pybpf_"
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(map_name: str) -> str:
    """`@opens` -> `pybpf_opens`, `@` -> `pybpf_map`."""
    return PREFIX + (_NOT_IN_NAME.sub("_", map_name.lstrip("@")) or "map")


def map_families(spec: MapSpec, entries: Entries) -> list[Metric]:
    """The metric families of one map's entries (as Session.read_map returns them): its kind's
    (pybpf.mapkinds), with the keys flattened into labels."""
    labels = label_names("key", sum(label_width(t) for t in spec.key))
    keyed = [(_flatten(key), value) for key, value in entries]
    call = f"{spec.kind.value}()" if spec.kind.is_aggregation else "values"
    doc = f"{spec.name}: {call} of the pybpf script"
    return kind_for(spec.kind).metric_families(spec, metric_name(spec.name), doc, labels, keyed, _flatten)


def helper_error_families(counts: list[HelperErrorCount]) -> list[Metric]:
    """The tracer's own counters of failed helper calls (Session.helper_errors()):
    `pybpf_helper_errors_total{helper}` for every helper the program checks, and
    `pybpf_map_full_total{map}`, the updates dropped because the map was full, for every map the
    program inserts into; 0 until one fails, so an alert has a series to watch."""
    errors = CounterMetricFamily(PREFIX + "helper_errors", "BPF helper calls of the pybpf script "
                                 "that failed (pybpf -k shows where)", labels=["helper"])
    for helper, n in sorted(by_helper(counts).items()):
        errors.add_metric([helper], n)
    full = CounterMetricFamily(PREFIX + "map_full", "map updates the pybpf script lost because the "
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
            out.append(escape_bytes(part) if isinstance(part, str) else str(part))
    return out


class MapCollector:
    """A prometheus_client collector of a Session's maps, read at each collect() between start()
    and close()."""

    def __init__(self, session):
        self._session = session
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False

    def describe(self) -> list:
        return []      # nothing known before a scrape; keeps register() from reading the maps

    def collect(self):
        with self._lock:
            session = self._session
            if not self._reading or session.loaded is None:
                families = []
            else:
                families = [f for spec in session.compiled.maps
                            for f in map_families(spec, session.read_map(spec))]
                families += helper_error_families(session.helper_errors())
        yield from families

    def start(self) -> None:
        """The session has started: scrapes read its maps from now on (until close())."""
        with self._lock:
            self._reading = not self._closed

    def close(self) -> None:
        """After this returns no scrape touches the session again."""
        with self._lock:
            self._reading, self._closed = False, True


class MetricsServer:
    """The endpoint: `address` as bound ((host, port), or the Unix socket's path); start() lets
    scrapes read the session's maps; close() stops serving and detaches the collector from the
    session, waiting for no client."""

    def __init__(self, collector: MapCollector, server: ScrapeServer, address, unix: UnixListener | None):
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

    def start(self) -> None:
        self.collector.start()

    def close(self) -> None:
        self.collector.close()        # waits for a map read in progress, bounded by the maps' size
        self._server.close()
        if self._unix is not None:
            self._unix.unlink()


def make_registry(session) -> tuple[CollectorRegistry, MapCollector]:
    """Our own registry, not prometheus_client's global one: the session's maps, and the process
    collector (process_cpu_seconds_total, process_resident_memory_bytes, ...: pybpf's own user-space
    cost, one read of /proc/self per scrape). No platform or GC collectors: constant or noise."""
    registry = CollectorRegistry(auto_describe=False)
    collector = MapCollector(session)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry, collector


def serve_metrics(session, address: tuple[str, int] | str, *, max_connections: int = MAX_CONNECTIONS,
                  timeout_s: float = TIMEOUT_S, warn=None) -> MetricsServer:
    """Serve the session's maps on GET /metrics at `address`, (host, port) or a Unix socket's path,
    from two daemon threads, once start() is called. Binding first lets a busy port fail before
    anything is loaded. `warn(text)` gets one line per kind of server failure (default: stderr).
    OSError if the address cannot be bound (e.g. EADDRINUSE) or the threads cannot start."""
    registry, collector = make_registry(session)
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
