"""The tracer's own metrics end to end: a ring buffer too small for a printf storm loses events,
and `pybpf_events_lost_total` says how many, exactly as pybpf prints at exit; then a real
Prometheus (Debian's `prometheus`) scrapes `pybpf --metrics` and stores the maps and the tracer
metrics as they are."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from e2e_helpers import Running, named_child

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from test_metrics_cli import free_port, scrape  # noqa: E402

COMM = f"pybpfl{os.getpid()}"
GETPPID_N_TIMES = "import os\nfor _ in range(int(sys.argv[2])):\n    os.getppid()\n"
PRINTFS_PER_EVENT = 100
# 100 records of 48 bytes (8 of ring header, 8 of event header, 4 values) per event: more than a
# 4 KiB ring holds, so each event loses some however fast pybpf reads.
STORM = ('BEGIN { printf("ready\\n"); } '
         f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @storms = count(); '
         f'unroll({PRINTFS_PER_EVENT}) {{ printf("storm %d %d %d %d\\n", pid, tid, cpu, nsecs); }} }}')


@pytest.mark.kernel
def test_lost_events_match_what_pybpf_prints():
    port = free_port()
    run = Running(["--metrics", f"127.0.0.1:{port}", "--ringbuf-size", "4096", "-e", STORM])
    run.wait_for("ready")
    assert scrape(port)[("pybpf_events_lost_total", ())] == 0
    events = 20
    assert subprocess.run(named_child(COMM, GETPPID_N_TIMES, events), timeout=60).returncode == 0
    # Nothing fires after the child: the count is final once pybpf has read what the ring held.
    samples = scrape(port)
    lost = samples[("pybpf_events_lost_total", ())]
    assert samples[("pybpf_storms", ())] == events
    assert lost >= events * (PRINTFS_PER_EVENT - 4096 // 48)
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0, err
    printed = len(re.findall(r"^storm \d+ \d+ \d+ \d+$", out, re.M))
    assert f"Lost {int(lost)} events" in out
    assert printed + lost == events * PRINTFS_PER_EVENT        # every record printed or counted lost


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pybpf
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class Prometheus:
    """Debian's prometheus on 127.0.0.1, scraping one target every second, its data in a temp dir."""

    def __init__(self, folder, target_port: int):
        config = folder / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.replace("{port}", str(target_port)))
        self.port = free_port()
        self.log = open(folder / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> dict:
        """{sorted label items without __name__, job, instance: value} of an instant query."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            result = json.load(response)["data"]["result"]
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("__name__", "job", "instance"))):
                float(r["value"][1]) for r in result}

    def wait_for(self, expr: str, wanted, timeout: float = 60) -> dict:
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                seen = self.query(expr)
                if wanted(seen):
                    return seen
            except OSError:
                pass                      # not listening yet
            time.sleep(0.5)
        raise AssertionError(f"{expr}: {seen!r} after {timeout}s")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("prometheus"), reason="needs prometheus (Debian: apt-get install prometheus)")
def test_prometheus_stores_maps_and_tracer_metrics(tmp_path):
    pybpf_port = free_port()
    run = Running(["--metrics", f"127.0.0.1:{pybpf_port}", "--metrics-max-series", "2", "-e",
                   'BEGIN { printf("ready\\n"); $i = 0; while ($i < 5) { @sizes[$i] = $i * 10; $i++; } } '
                   f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @calls[comm] = count(); '
                   '@lat = hist(5); }'])
    run.wait_for("ready")
    assert subprocess.run(named_child(COMM, GETPPID_N_TIMES, 17), timeout=60).returncode == 0
    prometheus = Prometheus(tmp_path, pybpf_port)
    try:
        assert prometheus.wait_for("pybpf_calls", lambda r: r)[(("key", COMM),)] == 17
        assert prometheus.query("pybpf_sizes") == {(("key", "4"),): 40, (("key", "3"),): 30}
        assert prometheus.query("pybpf_series_dropped") == {
            (("map", "@calls"),): 0, (("map", "@lat"),): 0, (("map", "@sizes"),): 3}
        assert prometheus.query("pybpf_map_entries") == {
            (("map", "@calls"),): 1, (("map", "@sizes"),): 5}
        assert set(prometheus.query("pybpf_map_max_entries").values()) == {4096}
        assert prometheus.query("pybpf_events_lost_total") == {(): 0}
        assert prometheus.query("pybpf_probes_attached") == {(): 2}
        # every value was 5: in hist's [4, 8) bucket, le="7.0" (Prometheus interpolates inside it)
        (p99,) = prometheus.query("histogram_quantile(0.99, sum by (le) (pybpf_lat_bucket))").values()
        assert 3 < p99 <= 7
        assert prometheus.query("up") == {(): 1}
    finally:
        prometheus.close()
        out, err, code = run.stop(signal.SIGINT)
    assert code == 0, err
    assert f"@calls[{COMM}]: 17" in out
