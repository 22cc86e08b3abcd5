"""The Prometheus exporter: every map kind as metric families, read from a live Session at scrape
time, parsed back with prometheus_client's own parser and checked exactly."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from prometheus_client.exposition import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from pybpf import types as T  # noqa: E402
from pybpf.mapkinds import LhistParams, Stats  # noqa: E402
from pybpf.program import MapKind, MapSpec  # noqa: E402
from pybpf.mapkinds.base import key_labels  # noqa: E402
from pybpf.runtime.metrics import (SessionCollector, check_prefix, make_registry,  # noqa: E402
                                   map_families, metric_name, parse_address, serve_metrics, top_entries)
from pybpf.runtime.maps import MapBatch  # noqa: E402
from pybpf.runtime.output import make_output  # noqa: E402

PROGRAM = """
BEGIN {
    @c[1, "a"] = count(); @c[1, "a"] = count(); @c[2, "b"] = count();
    @h = hist(5); @h = hist(0); @h = hist(-3);
    @l["k"] = lhist(12, 0, 100, 10); @l["k"] = lhist(150, 0, 100, 10);
    @s = stats(3); @s = stats(4);
    @a = avg(-7); @a = avg(2);
    @v["x"] = 7;
    @mn = min(-4);
    @[probe] = sum(9);
    @t[(1, "z"), 2] = ("q", 5);
}
interval:ms:10 { @ticks = count(); }
"""

# sample name -> {labels: value}, for the maps BEGIN filled (every sample of theirs, exactly)
EXPECTED = {
    "pybpf_c": {(("key0", "1"), ("key1", "a")): 2, (("key0", "2"), ("key1", "b")): 1},
    # hist buckets used: (..., 0) index 0, [0] index 1, ..., [4, 8) index 5: le -1, 0, 1, 3, 7
    "pybpf_h_bucket": {(("le", "-1.0"),): 1, (("le", "0.0"),): 2, (("le", "1.0"),): 2, (("le", "3.0"),): 2,
                       (("le", "7.0"),): 3, (("le", "+Inf"),): 3},
    "pybpf_h_count": {(): 3},
    # lhist [10, 20) and [100, ...): the open top bucket is +Inf
    "pybpf_l_bucket": {**{(("key", "k"), ("le", f"{hi - 1}.0")): 1 for hi in range(20, 101, 10)},
                       (("key", "k"), ("le", "+Inf")): 2},
    "pybpf_l_count": {(("key", "k"),): 2},
    "pybpf_s_count": {(): 2}, "pybpf_s_sum": {(): 7}, "pybpf_s_average": {(): 3},
    "pybpf_a_count": {(): 2}, "pybpf_a_sum": {(): -5}, "pybpf_a_average": {(): -2},
    "pybpf_v": {(("key", "x"),): 7},
    "pybpf_mn": {(): -4},
    "pybpf_map": {(("key", "BEGIN"),): 9},
    "pybpf_t_info": {(("key0", "1"), ("key1", "z"), ("key2", "2"), ("value0", "q"), ("value1", "5")): 1},
}
TYPES = {"pybpf_c": "gauge", "pybpf_h": "histogram", "pybpf_l": "histogram", "pybpf_s": "summary",
         "pybpf_s_average": "gauge", "pybpf_a": "summary", "pybpf_v": "gauge", "pybpf_mn": "gauge",
         "pybpf_map": "gauge", "pybpf_t_info": "gauge", "pybpf_ticks": "gauge"}   # info: a gauge of 1 in text


def scrape(text: str) -> tuple[dict, dict]:
    """-> ({sample name: {sorted label items: value}}, {family name: type})"""
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples, types


# --- without the kernel ------------------------------------------------------------------------------

def test_metric_names():
    assert metric_name("@opens") == "pybpf_opens"
    assert metric_name("@") == "pybpf_map"
    assert metric_name("@x.y") == "pybpf_x_y"


@pytest.mark.parametrize("text, address", [
    ("9100", ("127.0.0.1", 9100)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9100", ("::1", 9100)),
    ("localhost:0", ("localhost", 0)), ("unix:/run/pybpf.sock", "/run/pybpf.sock"), ("unix:rel:1", "rel:1"),
])
def test_parse_address(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "x", ":9100", "::1:9100", "1.2.3.4:", "65536", "1.2.3.4:-1", "unix:"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_lhist_open_ends_and_an_empty_histogram():
    spec = MapSpec("@l", "l", MapKind.LHIST, (T.IntType(),), T.IntType(), LhistParams(0, 20, 10))
    # index 0: (..., 0); 1: [0, 10); 2: [10, 20); 3: [20, ...)
    families = map_families(spec, [((-5,), {0: 1, 3: 2}), ((6,), {1: 4}), ((7,), {1: 0})])
    samples, _ = scrape(generate_latest(_Static(families)).decode())
    le = lambda key, bound: (("key", key), ("le", bound))     # noqa: E731
    assert samples["pybpf_l_bucket"] == {
        le("-5", "-1.0"): 1, le("-5", "9.0"): 1, le("-5", "19.0"): 1, le("-5", "+Inf"): 3,
        le("6", "-1.0"): 0, le("6", "9.0"): 4, le("6", "19.0"): 4, le("6", "+Inf"): 4,
        le("7", "-1.0"): 0, le("7", "9.0"): 0, le("7", "19.0"): 0, le("7", "+Inf"): 0}
    assert samples["pybpf_l_count"] == {(("key", "-5"),): 3, (("key", "6"),): 4, (("key", "7"),): 0}
    assert "pybpf_l_sum" not in samples          # the kernel keeps no sum: none is made up
    empty = scrape(generate_latest(_Static(map_families(spec, [((1,), {})]))).decode())[0]
    assert empty["pybpf_l_bucket"] == {le("1", "+Inf"): 0}


def test_avg_of_nothing_and_empty_maps():
    spec = MapSpec("@a", "a", MapKind.AVG, (), T.IntType())
    samples, _ = scrape(generate_latest(_Static(map_families(spec, [((), Stats(0, 0))]))).decode())
    assert samples == {"pybpf_a_count": {(): 0}, "pybpf_a_sum": {(): 0}, "pybpf_a_average": {(): 0}}
    gauge = MapSpec("@g", "g", MapKind.COUNT, (T.StringType(16),), T.IntType())
    assert scrape(generate_latest(_Static(map_families(gauge, []))).decode()) == ({}, {"pybpf_g": "gauge"})


def _batches(*batches):
    """A reader of these batches of (key, value) entries, as Session.map_batches with its prefilter
    applied to (index, value) pairs the way maps.user_map_batches does."""
    def read(prefilter):
        for entries in batches:
            if prefilter is None:
                yield MapBatch(len(entries), len(entries), entries)
                continue
            kept = list(prefilter([(i, value) for i, (_, value) in enumerate(entries)]))
            yield MapBatch(len(entries), len(entries), [(entries[i][0], value) for i, value in kept])
    return read


def test_top_entries_keep_the_greatest_and_count_the_rest():
    spec = MapSpec("@c", "c", MapKind.COUNT, (T.IntType(),), T.IntType())
    batches = [[((1,), 5), ((2,), 9), ((3,), 1)], [((4,), 7), ((5,), 2)]]
    assert top_entries(spec, _batches(*batches), 2) == ([((2,), 9), ((4,), 7)], 5, 3)
    assert top_entries(spec, _batches(*batches), 1) == ([((2,), 9)], 5, 4)
    assert top_entries(spec, _batches(*batches), 10) == (
        sorted(batches[0] + batches[1], key=lambda e: -e[1]), 5, 0)


def test_top_entries_read_lazily():
    """The batches are consumed as they come, and once max_series entries are kept only the
    entries that beat them are decoded: a million entries are never a list."""
    spec = MapSpec("@c", "c", MapKind.COUNT, (T.IntType(),), T.IntType())
    decoded = []

    def read(prefilter):
        for start in range(0, 4096 * 256, 4096):
            values = [(i - start, i * 7919 % 1_000_003) for i in range(start, start + 4096)]
            kept = list(prefilter(values))
            decoded.append(len(kept))
            yield MapBatch(4096, 4096, [((start + i,), value) for i, value in kept])

    kept = top_entries(spec, read, 3)
    assert kept.entries == sorted((((i,), i * 7919 % 1_000_003) for i in range(4096 * 256)),
                                  key=lambda e: -e[1])[:3]
    assert kept.elements == 4096 * 256 and kept.dropped == 4096 * 256 - 3
    assert sum(decoded) < 4096 * 2        # the first batch, then a few that beat the bar


def test_top_entries_of_strings_by_key_and_of_histograms_by_count():
    names = MapSpec("@n", "n", MapKind.VALUE, (T.IntType(),), T.StringType(16))
    assert top_entries(names, _batches([((3,), "c"), ((1,), "z"), ((2,), "a")]), 2).entries == \
        [((1,), "z"), ((2,), "a")]
    hist = MapSpec("@h", "h", MapKind.HIST, (T.IntType(),), T.IntType())

    def read(prefilter):
        yield MapBatch(5, 3, [((1,), {3: 1}), ((2,), {3: 2, 4: 2}), ((3,), {5: 3})])
    assert top_entries(hist, read, 1) == ([((2,), {3: 2, 4: 2})], 5, 2)


def test_prefix_names_every_family():
    spec = MapSpec("@opens", "opens", MapKind.COUNT, (T.StringType(16),), T.IntType())
    assert [f.name for f in map_families(spec, [(("bash",), 2)], "host_")] == ["host_opens"]
    assert check_prefix("a_") == "a_" and check_prefix("_") == "_"
    for bad in ("", "9a", "a-b", "a:b", "a b"):
        with pytest.raises(ValueError):
            check_prefix(bad)


def test_key_labels():
    spec = lambda *key: MapSpec("@m", "m", MapKind.COUNT, key, T.IntType())    # noqa: E731
    assert key_labels(spec().key) == []
    assert key_labels(spec(T.IntType()).key) == ["key"]
    assert key_labels(spec(T.TupleType((T.IntType(), T.StringType(8))), T.IntType()).key) == ["key0", "key1", "key2"]


class _Static:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


# --- a live session -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compiled():
    from pybpf.compiler import compile_source
    return compile_source(PROGRAM)


@pytest.mark.kernel
def test_every_map_kind_read_at_scrape_time(compiled):
    from pybpf.runtime.session import Session

    with Session(compiled, make_output("text", io.StringIO())) as session:
        collector = SessionCollector(session)
        registry = make_registry(collector)
        assert not any(k.startswith("pybpf_") for k in scrape(generate_latest(registry).decode())[0])
        session.start()
        samples, types = scrape(generate_latest(registry).decode())
        for name, expected in EXPECTED.items():
            assert samples[name] == expected, name
        assert {k: types[k] for k in TYPES} == TYPES
        # read at each scrape, not cached: the interval probe keeps counting
        ticks = lambda samples: samples.get("pybpf_ticks", {}).get((), 0)     # noqa: E731
        first = ticks(samples)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            session.poll(0.05)
            now = ticks(scrape(generate_latest(registry).decode())[0])
            if now > first:
                break
        assert now > first
        collector.close()
        assert not any(k.startswith("pybpf_") for k in scrape(generate_latest(registry).decode())[0])
        session.stop()


@pytest.mark.kernel
def test_served_over_http_until_closed(compiled):
    from pybpf.runtime.session import Session

    with Session(compiled, make_output("text", io.StringIO())) as session:
        server = serve_metrics(SessionCollector(session), ("127.0.0.1", 0))
        try:
            host, port = server.address
            assert host == "127.0.0.1" and port > 0
            url = f"http://127.0.0.1:{port}/metrics"
            before = urllib.request.urlopen(url, timeout=5).read().decode()
            assert "pybpf_" not in before and "process_cpu_seconds_total" in before
            session.start()
            samples, _ = scrape(urllib.request.urlopen(url, timeout=5).read().decode())
            assert samples["pybpf_c"] == EXPECTED["pybpf_c"]
        finally:
            server.close()
        session.stop()
    with pytest.raises(OSError):         # the port is closed again
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_busy_port_is_an_oserror():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            serve_metrics(_Static([]), ("127.0.0.1", busy.getsockname()[1]))


@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("promtool"), reason="needs promtool (Debian: apt-get install prometheus)")
def test_promtool_accepts_the_exposition():
    from pybpf.compiler import compile_source
    from pybpf.runtime.session import Session

    # PROGRAM's maps again, under names promtool's lint takes for no unit (it reads @h as hours)
    compiled = compile_source('BEGIN { @calls[1, "a"] = count(); @latency = hist(5); '
                              '@sizes["k"] = lhist(12, 0, 100, 10); @reads = stats(3); @mean = avg(-7); '
                              '@value["x"] = 7; @low = min(-4); @[probe] = sum(9); '
                              '@names[(1, "z"), 2] = ("q", 5); }')
    with Session(compiled, make_output("text", io.StringIO())) as session:
        collector = SessionCollector(session)
        registry = make_registry(collector)
        session.start()
        text = generate_latest(registry)
        collector.close()
        session.stop()
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint


@pytest.mark.kernel
def test_chosen_maps_top_series_and_tracer_metrics():
    from pybpf.compiler import compile_source
    from pybpf.runtime.session import Session

    compiled = compile_source('BEGIN { $i = 0; while ($i < 50) { @m[$i] = $i * 2; $i++; } @other = count(); '
                              '@n = count(); }')
    with Session(compiled, make_output("text", io.StringIO())) as session:
        with pytest.raises(ValueError, match="no map @nope"):
            SessionCollector(session, maps=["@m", "@nope"])
        collector = SessionCollector(session, maps=["@m", "@n"], max_series=10, prefix="t_")
        registry = make_registry(collector)
        session.start()
        samples, types = scrape(generate_latest(registry).decode())
        session.stop()
    assert samples["t_m"] == {(("key", str(i)),): 2 * i for i in range(40, 50)}
    assert "t_other" not in samples and samples["t_n"] == {(): 1}
    assert samples["t_series_dropped"] == {(("map", "@m"),): 40, (("map", "@n"),): 0}
    assert samples["t_map_entries"] == {(("map", "@m"),): 50}          # @n is an array: never full
    assert samples["t_map_max_entries"] == {(("map", "@m"),): compiled.maps[[s.name for s in compiled.maps]
                                                                           .index("@m")].max_entries}
    assert samples["t_events_lost_total"] == {(): 0}
    assert samples["t_probes_attached"] == {(): 1}                      # BEGIN
    assert types["t_events_lost"] == "counter" and types["t_probes_attached"] == "gauge"
    assert not any(name.startswith("pybpf_") for name in samples)


@pytest.mark.kernel
def test_program_run_statistics(bpf_run_stats):
    from pybpf.compiler import compile_source
    from pybpf.runtime.session import Session

    compiled = compile_source("tracepoint:syscalls:sys_enter_getppid { @calls = count(); }")
    with Session(compiled, make_output("text", io.StringIO())) as session:
        registry = make_registry(SessionCollector(session))
        session.start()
        for _ in range(100):
            os.getppid()
        samples, types = scrape(generate_latest(registry).decode())
        session.stop()
    (labels, runs), = samples["pybpf_program_runs_total"].items()
    assert dict(labels) == {"program": compiled.programs[0].section,
                            "probe": "tracepoint:syscalls:sys_enter_getppid"}
    assert runs >= samples["pybpf_calls"][()] >= 100      # the map was read before the runs
    assert 0 < samples["pybpf_program_run_seconds_total"][labels] < 1
    assert types["pybpf_program_runs"] == types["pybpf_program_run_seconds"] == "counter"
