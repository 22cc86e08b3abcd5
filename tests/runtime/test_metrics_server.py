"""The metrics HTTP server against clients that misbehave: idle, partial, flooding, not reading,
or simply many; and the Unix socket's safe creation. No kernel needed: collect() is a stand-in."""

from __future__ import annotations

import gzip
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from prometheus_client.metrics_core import GaugeMetricFamily  # noqa: E402

from pybpf.runtime.metrics_server import (MAX_REQUEST_HEAD, ScrapeServer, UnixListener,  # noqa: E402
                                          listen_tcp, parse_request)

# a traceback in one of the server's threads fails the test
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

GET = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


class Counting:
    """collect(): a gauge of how many times it was called; `block` holds the next call."""

    def __init__(self, delay_s: float = 0.0):
        self.calls = 0
        self.delay_s = delay_s

    def __call__(self):
        self.calls += 1
        time.sleep(self.delay_s)
        family = GaugeMetricFamily("pybpf_calls", "renders so far")
        family.add_metric([], self.calls)
        return [family]


@pytest.fixture
def serve():
    servers = []

    def start(collect=None, **limits):
        server = ScrapeServer(listen_tcp("127.0.0.1", 0), collect or Counting(), **limits)
        servers.append(server)
        return server, server._listener.getsockname()

    yield start
    for server in servers:
        server.close()


def exchange(address, request: bytes, timeout: float = 10.0, family=socket.AF_INET) -> tuple[int, dict, bytes]:
    """Send `request`, read to EOF: (status, {lowercase header: value}, body)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(request)
        return split_response(read_to_eof(sock))


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def split_response(data: bytes) -> tuple[int, dict, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True if the server closes (EOF or reset) within `within` seconds; what it sent is ignored."""
    sock.settimeout(within)
    try:
        read_to_eof(sock)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return True


def test_get_metrics_in_each_format(serve):
    server, address = serve()
    status, headers, body = exchange(address, GET)
    assert status == 200 and headers["connection"] == "close"
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE pybpf_calls gauge\npybpf_calls 1.0\n" in body
    assert int(headers["content-length"]) == len(body)
    status, headers, body = exchange(address, b"GET /metrics?name[]=x HTTP/1.0\r\n"
                                     b"Accept: application/openmetrics-text; version=1.0.0\r\n"
                                     b"Accept-Encoding: gzip\r\n\r\n")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert gzip.decompress(body).endswith(b"pybpf_calls 2.0\n# EOF\n")
    status, headers, body = exchange(address, b"HEAD /metrics HTTP/1.1\n\n")     # bare \n ends a head too
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 404),
    (b"GET /metrics/x HTTP/1.1\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
    (b"hello\r\n\r\n", 400),
    (b"GET /metrics SMTP/1.0\r\n\r\n", 400),
    (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST_HEAD, 431),
    # prometheus_client's encoder choice raises TypeError on this one
    (b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=abc\r\n\r\n", 406),
])
def test_anything_else_gets_an_error_status_and_no_render(serve, request_bytes, status):
    collect = Counting()
    _, address = serve(collect)
    got, headers, _ = exchange(address, request_bytes)
    assert got == status
    assert collect.calls == 0
    if status == 405:
        assert headers["allow"] == "GET, HEAD"
    assert exchange(address, GET)[0] == 200           # and the server goes on


def test_parse_request_reads_the_headers_we_use():
    request = parse_request(b"GET /metrics?x=1 HTTP/1.1\r\naccept-ENCODING:  gzip \r\nAccept: text/plain")
    assert (request.method, request.path, request.accept, request.accept_encoding) == \
        ("GET", "/metrics", "text/plain", "gzip")


def test_silent_and_partial_clients_are_dropped_after_the_timeout(serve):
    _, address = serve(timeout_s=0.3)
    silent = socket.create_connection(address)
    partial = socket.create_connection(address)
    partial.sendall(b"GET /metr")
    dribbling = socket.create_connection(address)
    try:
        dropped_at = None
        start = time.monotonic()
        for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":     # a byte at a time: still one deadline
            try:
                dribbling.send(bytes([byte]))
            except OSError:
                dropped_at = time.monotonic() - start
                break
            time.sleep(0.05)
        assert dropped_at is not None and dropped_at < 2.0
        assert closed_by_server(silent, within=5)
        assert closed_by_server(partial, within=5)
        assert closed_by_server(dribbling, within=5)
    finally:
        for sock in (silent, partial, dribbling):
            sock.close()
    assert exchange(address, GET)[0] == 200


def test_at_the_cap_a_new_client_pushes_out_the_oldest_idle_one(serve):
    _, address = serve(max_connections=3, timeout_s=30)
    idle = [socket.create_connection(address) for _ in range(3)]
    try:
        time.sleep(0.2)
        partial = idle[2]
        partial.sendall(b"GET /metr")        # not a whole request: as idle as the others
        for _ in range(2):                   # each takes the place of the oldest idle connection
            assert exchange(address, GET, timeout=5)[0] == 200
            idle.append(socket.create_connection(address))      # at the cap again
            time.sleep(0.2)
        assert closed_by_server(idle[0], within=2) and closed_by_server(idle[1], within=2)
        assert not closed_by_server(partial, within=0.5)        # newer than the two scrapes' victims
        assert not closed_by_server(idle[3], within=0.1)
    finally:
        for sock in idle:
            sock.close()


def test_beyond_the_cap_of_busy_connections_a_client_is_answered_503_at_once(serve):
    _, address = serve(Counting(delay_s=1.5), max_connections=2)
    busy = [socket.create_connection(address) for _ in range(2)]
    try:
        for sock in busy:
            sock.sendall(GET)                # both wait for the slow render: nothing to push out
        time.sleep(0.2)
        start = time.monotonic()
        try:
            refused = exchange(address, GET, timeout=5)[0] == 503
        except ConnectionResetError:         # the request came after the close (see _refuse)
            refused = True
        assert refused and time.monotonic() - start < 1.0      # not queued behind the busy ones
        assert all(split_response(read_to_eof(sock))[0] == 200 for sock in busy)
    finally:
        for sock in busy:
            sock.close()


def test_a_client_that_reads_nothing_is_dropped(serve):
    # an answer past what the kernel buffers for the client (the largest send buffer, twice over)
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        samples = 2 * int(f.read().split()[2]) // 50_000
    big = GaugeMetricFamily("pybpf_big", "a large answer", labels=["key"])
    for i in range(samples):
        big.add_metric([f"{i}".ljust(50_000, "k")], i)
    _, address = serve(lambda: [big], timeout_s=0.5)
    start = time.monotonic()
    status, _, body = exchange(address, GET)
    assert status == 200 and body.count(b"\npybpf_big{") == samples
    render_s = time.monotonic() - start
    with socket.socket() as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(address)
        stuck.sendall(GET)
        time.sleep(2 * render_s + 1.5)      # the render, then the timeout with the answer half sent
        received = len(read_to_eof_or_reset(stuck))
    assert 0 < received < len(body) * 3 // 4            # dropped mid-answer, what the kernel held sent


def read_to_eof_or_reset(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_concurrent_scrapes_share_renders(serve):
    collect = Counting(delay_s=0.3)
    _, address = serve(collect)
    results = []

    def scrape():
        results.append(exchange(address, GET))

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [status for status, _, _ in results] == [200] * 20
    assert collect.calls <= 4            # one render at a time, every request waiting shares the next
    # the answers came from at most collect.calls different renders, each read after its request
    assert len({body for _, _, body in results}) == collect.calls


def test_a_failing_collect_is_a_500_reported_once(serve):
    def collect():
        raise OSError(9, "Bad file descriptor")
    warnings = []
    _, address = serve(collect, warn=warnings.append)
    for _ in range(3):
        assert exchange(address, GET)[0] == 500
    assert warnings == ["WARNING: a metrics scrape failed: OSError: [Errno 9] Bad file descriptor"]


def test_close_waits_for_no_client(serve):
    server, address = serve(Counting(delay_s=0.2), timeout_s=60)
    clients = [socket.create_connection(address) for _ in range(5)]
    clients[0].sendall(b"GET /met")
    clients[1].sendall(GET)                 # in a render when close() comes
    try:
        time.sleep(0.1)
        start = time.monotonic()
        server.close()
        assert time.monotonic() - start < 1.0
        assert all(closed_by_server(c, within=2) for c in clients)
        assert not [t for t in threading.enumerate() if t.name.startswith("pybpf-metrics")]
        with pytest.raises(OSError):
            socket.create_connection(address, timeout=2).close()
    finally:
        for sock in clients:
            sock.close()


def test_threads_that_cannot_start_are_an_oserror(monkeypatch):
    calls = []
    real_start = threading.Thread.start

    def start(thread):
        calls.append(thread.name)
        if len(calls) == 2:
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    listener = listen_tcp("127.0.0.1", 0)
    with pytest.raises(OSError, match="cannot start the server's threads"):
        ScrapeServer(listener, Counting())
    assert listener.fileno() == -1          # closed, and the thread that started has stopped
    assert not [t for t in threading.enumerate() if t.name.startswith("pybpf-metrics")]


EMFILE_SERVER = """
import resource, socket, sys, time
from pybpf.runtime.metrics_server import ScrapeServer, listen_tcp
server = ScrapeServer(listen_tcp("127.0.0.1", 0), lambda: [], max_connections=1000, timeout_s=1.0,
                      warn=lambda text: print(text, file=sys.stderr, flush=True))
nfds = len(__import__("os").listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (nfds + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
print(server._listener.getsockname()[1], flush=True)
sys.stdin.read()
server.close()
"""


def test_out_of_descriptors_pauses_accepting_and_recovers():
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = ("127.0.0.1", int(proc.stdout.readline()))
        flood = [socket.create_connection(address) for _ in range(40)]     # more than its fd limit
        try:
            time.sleep(0.5)
        finally:
            for sock in flood:
                sock.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:          # the flood's backlog drains within its timeout
            try:
                if exchange(address, GET, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("no scrape answered after the flood")
    finally:
        out, err = proc.communicate("", timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err
    assert err.splitlines() == ["WARNING: metrics: cannot accept a connection (Too many open files); "
                                "pausing new connections"]


# --- the Unix socket ---------------------------------------------------------------------------------

def test_unix_socket_is_created_0600_served_and_removed(tmp_path):
    path = str(tmp_path / "m.sock")
    os.umask(old := os.umask(0))         # the creation must not depend on the caller's umask
    try:
        unix = UnixListener(path)
    finally:
        os.umask(old)
    server = ScrapeServer(unix.socket, Counting())
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert exchange(path, GET, family=socket.AF_UNIX)[0] == 200
    finally:
        server.close()
        unix.unlink()
    assert not os.path.lexists(path)


def test_unix_refuses_what_is_not_a_stale_socket_of_ours(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("keep me")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for path in (regular, link):
        with pytest.raises(OSError, match="exists and is not a socket"):
            UnixListener(str(path))
    assert regular.read_text() == "keep me" and link.is_symlink()
    assert not (tmp_path / "elsewhere").exists()

    live = UnixListener(str(tmp_path / "live.sock"))
    try:
        with pytest.raises(OSError, match="in use by another server"):
            UnixListener(str(tmp_path / "live.sock"))
    finally:
        live.socket.close()
    # now nobody listens on it: a previous run's socket, replaced
    again = UnixListener(str(tmp_path / "live.sock"))
    again.socket.close()
    again.unlink()


def test_unix_refuses_another_users_socket(tmp_path):
    path = tmp_path / "theirs.sock"
    with socket.socket(socket.AF_UNIX) as theirs:
        theirs.bind(str(path))
    os.chown(path, 65534, 65534)
    with pytest.raises(OSError, match="is not a socket of uid"):
        UnixListener(str(path))
    assert path.exists()


def test_unix_unlink_leaves_a_path_that_is_no_longer_ours(tmp_path):
    path = tmp_path / "m.sock"
    unix = UnixListener(str(path))
    unix.socket.close()
    os.unlink(path)
    path.write_text("someone else's")
    unix.unlink()
    assert path.read_text() == "someone else's"
