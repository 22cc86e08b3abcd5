"""`pybpf --metrics` against hostile and numerous clients while a real trace runs (issue 13): 1000
idle connections and 50 concurrent scrapers cost the trace no event, no traceback and not its maps
at Ctrl-C; a client that sends half a request is dropped; the Unix socket is private and goes away.
Loopback only; bounded in connections and time."""

import os
import resource
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from e2e_helpers import Running, named_child, run_pybpf

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_metrics_cli import free_port  # noqa: E402

COMM = f"pybpfl{os.getpid()}"
EVENTS = 20_000
IDLE = 1000
SCRAPERS = 50
MAX_CONNECTIONS = 64           # pybpf.runtime.metrics_server.MAX_CONNECTIONS
# getppid in bursts of 200 with a pause: a ring buffer of 64 KiB (4096 records of 16 bytes) holds
# about 20 bursts, so a trace loop stalled by the scrapes for a few hundred ms would lose events
PACED_GETPPID = ("import os, time\nfor i in range(int(sys.argv[2])):\n    os.getppid()\n"
                 "    if i % 200 == 199:\n        time.sleep(0.02)\n")
SCRIPT = ('BEGIN { printf("ready\\n"); } '
          f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @calls = count(); printf("e\\n"); }}')


def http_get(address, family=socket.AF_INET, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET /metrics, read to EOF: (status, body). OSError when the connection fails or is reset."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionAbortedError("closed without an answer")
    return int(head.split()[1]), body


def calls_in(body: bytes) -> float:
    samples = {s.name: s.value for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    return float(samples.get("pybpf_calls", 0))


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.fixture
def nofile():
    """Enough descriptors in this process for the idle clients and the scrapers."""
    need = IDLE + SCRAPERS + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"needs {need} open files; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Scrapers:
    """SCRAPERS threads scraping in a loop until stop(); every outcome classified."""

    def __init__(self, port: int):
        self.port = port
        self.ok: list[float] = []            # pybpf_calls of each answered scrape, in time order
        self.refused = 0                     # 503, or closed at once: beyond the cap
        self.failed: list[str] = []          # anything else: a hang, a bad status, a bad body
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop) for _ in range(SCRAPERS)]
        for thread in self._threads:
            thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                status, body = http_get(("127.0.0.1", self.port))
                outcome = calls_in(body) if status == 200 else status
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                outcome = 503
            except Exception as e:
                outcome = f"{type(e).__name__}: {e}"
            with self._lock:
                if outcome == 503:
                    self.refused += 1
                    time.sleep(0.05)          # as a scraper would back off, not a busy loop
                elif isinstance(outcome, float):
                    self.ok.append(outcome)
                else:
                    self.failed.append(str(outcome))

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.mark.kernel
def test_idle_connections_and_concurrent_scrapers_cost_the_trace_nothing(nofile):
    port = free_port()
    run = Running(["--metrics", f"127.0.0.1:{port}", "--ringbuf-size", "64K", "-e", SCRIPT])
    run.wait_for("ready")
    pid = run.proc.pid
    fds_before, threads_before = open_fds(pid), threads(pid)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(IDLE)]
    scrapers = None
    try:
        # pybpf holds at most the cap of them (the rest were answered 503 and closed), and no
        # thread per connection (under a task limit, each was a traceback)
        time.sleep(0.5)
        assert open_fds(pid) <= fds_before + MAX_CONNECTIONS
        scrapers = Scrapers(port)
        time.sleep(0.5)
        assert threads(pid) == threads_before
        child = subprocess.run(named_child(COMM, PACED_GETPPID, EVENTS), timeout=120)
        assert child.returncode == 0
        # keep scraping until some answers came after the child's last event
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and EVENTS not in scrapers.ok[-SCRAPERS:]:
            time.sleep(0.2)
    finally:
        if scrapers:
            scrapers.stop()
        for sock in idle:
            sock.close()
    assert not scrapers.failed, scrapers.failed[:5]
    # fewer scrapers than the cap: each took an idle client's place, none was refused
    assert scrapers.refused == 0
    assert EVENTS in scrapers.ok and max(scrapers.ok) == EVENTS
    assert len(scrapers.ok) >= SCRAPERS
    out, err, code = run.stop(signal.SIGINT, timeout=10)
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err and "WARNING" not in err, err
    assert f"@calls: {EVENTS}" in out
    assert out.splitlines().count("e") == EVENTS      # every event through the ring, in time
    assert "Lost" not in out


PIDS_CGROUP = "/sys/fs/cgroup/pids"          # cgroup v1's pids controller, as on the test machine


@pytest.mark.kernel
@pytest.mark.skipif(not os.path.exists(f"{PIDS_CGROUP}/cgroup.procs"), reason="needs the v1 pids cgroup")
def test_no_task_to_spare_and_many_clients():
    """Issue 13's finding: under a task limit, each idle connection past it was a traceback and
    the run ended in `internal error` without its maps. Here pybpf may not start one more task."""
    group = f"{PIDS_CGROUP}/pybpf-test-{os.getpid()}"
    os.mkdir(group)
    run = None
    try:
        port = free_port()
        run = Running(["--metrics", f"127.0.0.1:{port}", "-e", 'BEGIN { printf("ready\\n"); @x = 7; }'])
        run.wait_for("ready")
        with open(f"{group}/cgroup.procs", "w") as f:
            f.write(str(run.proc.pid))
        with open(f"{group}/pids.current") as f, open(f"{group}/pids.max", "w") as limit:
            limit.write(f.read().strip())
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(89)]
        try:
            statuses = [http_get(("127.0.0.1", port))[0] for _ in range(5)]
        finally:
            for sock in idle:
                sock.close()
        out, err, code = run.stop(signal.SIGINT, timeout=10)
        assert statuses == [200] * 5
        assert code == 0 and "Traceback" not in err and "internal error" not in err, err
        assert "@x: 7" in out
    finally:
        if run and run.proc.poll() is None:     # failed early: the group must be empty to go
            run.proc.kill()
            run.proc.wait()
        os.rmdir(group)


@pytest.mark.kernel
def test_a_half_sent_request_is_dropped_and_sigint_prints_at_once():
    port = free_port()
    run = Running(["--metrics", f"127.0.0.1:{port}", "-e",
                   'BEGIN { printf("ready\\n"); @x = 7; } interval:ms:100 { @ticks = count(); }'])
    run.wait_for("ready")
    first = socket.create_connection(("127.0.0.1", port), timeout=10)
    first.sendall(b"GET /metr")
    start = time.monotonic()
    with first:
        assert first.recv(100) == b""               # the server closed it: its 5 s to send a request
    assert time.monotonic() - start < 9
    with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
        second.sendall(b"GET /metrics HTT")         # still half sent at SIGINT
        time.sleep(0.2)
        start = time.monotonic()
        out, err, code = run.stop(signal.SIGINT, timeout=10)
        took = time.monotonic() - start
    assert code == 0 and "Traceback" not in err, err
    assert "@x: 7" in out
    assert took < 3, f"SIGINT to exit: {took:.2f} s"


@pytest.mark.kernel
def test_unix_socket_is_private_and_goes_away(tmp_path):
    path = str(tmp_path / "metrics.sock")
    run = Running(["--metrics", f"unix:{path}", "-e", 'BEGIN { printf("ready\\n"); @x = 7; }'])
    run.wait_for("ready")
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    status, body = http_get(path, family=socket.AF_UNIX)
    assert status == 200 and b"\npybpf_x 7.0\n" in body
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in err, err
    assert f"serving metrics on unix:{path}" in err
    assert "@x: 7" in out
    assert not os.path.lexists(path)


@pytest.mark.kernel
def test_unix_socket_refuses_a_path_that_is_not_its_own(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep")
    result = run_pybpf(["--metrics", f"unix:{target}", "-e", 'BEGIN { printf("began\\n"); }'])
    assert result.returncode == 1
    assert result.stdout == ""                 # nothing loaded, BEGIN never ran
    assert result.stderr.startswith(f"ERROR: --metrics: cannot serve on unix:{target}: ")
    assert result.stderr.count("\n") == 1
    assert target.read_text() == "keep"
