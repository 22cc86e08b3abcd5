"""The HTTP side of `pybpf --metrics`: a small server no client can turn against the tracer.

    listener = listen_tcp("127.0.0.1", 9100)              # or UnixListener("/run/pybpf.sock").socket
    server = ScrapeServer(listener, collect=lambda: list(registry.collect()))
    ...                                                   # GET /metrics: collect() now, encoded
    server.close()                                        # bounded: never waits for a client

Two threads, whatever the number of clients (prometheus_client's server started one per
connection, and under a task limit every idle client was a traceback):
- the I/O thread multiplexes the listener and every connection with `selectors` on non-blocking
  sockets, so no client can block it;
- the render thread calls `collect()` (the maps are read there) and encodes the families.
  Scrapes that arrive while a render runs share the next one: fifty concurrent scrapers cost one
  map read at a time, never fifty threads competing with the trace loop for the GIL, and every
  answer is read after its request arrived.

Limits, each a reply to a way a client could hurt the tracer:
- at most `max_connections` open connections. One more is accepted at once and takes the place of
  the oldest connection that has not sent a whole request yet; when every connection has (we are
  busy answering), it is answered `503` and closed. So idle clients cost pybpf at most the cap in
  descriptors and nothing in threads, and cannot lock a scraper out: a scraper sends its request
  as it connects, before newer idle clients push it out. Left in the listen backlog instead, idle
  clients would be served in turn, each holding a slot for `timeout_s`, starving real scrapers
  for minutes while the backlog overflowed;
- a request must arrive whole (at most 8 KiB of head) within `timeout_s` of connecting, and the
  answer must be taken within `timeout_s` of being ready: a client that sends or reads nothing,
  or dribbles bytes, is dropped;
- out of descriptors (EMFILE), accepting pauses for a moment rather than spinning;
- nothing raised in either thread escapes: a failed scrape is answered 500, and each kind of
  failure is reported once, in one line, through `warn`.

HTTP/1.0 style: one request per connection, `Connection: close`. `GET` and `HEAD` of `/metrics`
(any query) are served, other paths 404, other methods 405. The body format follows the
`Accept` header and `Accept-Encoding: gzip` as prometheus_client's own server does (its encoders).
"""

from __future__ import annotations

import collections
import errno
import gzip
import os
import queue
import selectors
import socket
import stat
import threading
import time
from typing import Callable

from prometheus_client.exposition import choose_encoder, gzip_accepted

MAX_CONNECTIONS = 64
TIMEOUT_S = 5.0
MAX_REQUEST_HEAD = 8192
LISTEN_BACKLOG = socket.SOMAXCONN       # a burst of connects waits in the kernel, not in SYN retries
ACCEPT_PAUSE_S = 0.1            # after EMFILE: let connections finish before accepting again
CLOSE_WAIT_S = 2.0              # close(): the longest it waits for a thread of ours
_IO_THREAD = "pybpf-metrics-io"

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            406: "Not Acceptable", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}


class ScrapeRequest:
    """A parsed request head: what to answer and in which format."""

    __slots__ = ("method", "path", "accept", "accept_encoding")

    def __init__(self, method: str, path: str, accept: str, accept_encoding: str):
        self.method, self.path = method, path
        self.accept, self.accept_encoding = accept, accept_encoding


def parse_request(head: bytes) -> ScrapeRequest:
    """The request line and the two headers we use. ValueError when the head is not HTTP/1.x."""
    lines = head.decode("latin-1").split("\n")
    parts = lines[0].strip().split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise ValueError("not an HTTP/1.x request line")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return ScrapeRequest(parts[0], parts[1].partition("?")[0], headers.get("accept", ""),
                         headers.get("accept-encoding", ""))


def response(status: int, body: bytes = b"", headers: tuple = (), head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def _error(status: int, allow: str | None = None) -> bytes:
    headers = (("Content-Type", "text/plain; charset=utf-8"),) + ((("Allow", allow),) if allow else ())
    return response(status, f"{status} {_REASONS[status]}\n".encode(), headers)


BUSY = _error(503)


def _answer(request: ScrapeRequest) -> bytes | None:
    """The answer to a request that needs no render; None for a scrape."""
    if request.method not in ("GET", "HEAD"):
        return _error(405, allow="GET, HEAD")
    if request.path != "/metrics":
        return _error(404)
    return None


class _Variant:
    """One encoding of a render: prometheus_client's encoder for the Accept header, maybe gzip."""

    def __init__(self, request: ScrapeRequest):
        self.encoder, self.content_type = choose_encoder(request.accept)
        self.gzip = gzip_accepted(request.accept_encoding)
        self.key = (self.content_type, self.gzip)

    def encode(self, snapshot) -> bytes:
        body = self.encoder(snapshot)
        return gzip.compress(body) if self.gzip else body

    def response(self, body: bytes, head_only: bool) -> bytes:
        headers = (("Content-Type", self.content_type),) + ((("Content-Encoding", "gzip"),) if self.gzip else ())
        return response(200, body, headers, head_only)


class _Snapshot:
    """The families of one collect(), given to every encoder of one render."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return self._families


class _Connection:
    __slots__ = ("sock", "received", "request", "variant", "outgoing", "deadline")

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.received = b""
        self.request: ScrapeRequest | None = None
        self.variant: _Variant | None = None
        self.outgoing = memoryview(b"")
        self.deadline: float | None = deadline


class ScrapeServer:
    """Serve `collect()`'s families on `listener` (bound, listening) until close()."""

    def __init__(self, listener: socket.socket, collect: Callable[[], list], *,
                 max_connections: int = MAX_CONNECTIONS, timeout_s: float = TIMEOUT_S,
                 warn: Callable[[str], None] | None = None):
        self._listener = listener
        self._collect = collect
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        self._warn = warn or (lambda text: None)
        self._warned: set[str] = set()
        self._connections: dict[int, _Connection] = {}
        self._waiting: list[_Connection] = []        # whole requests for the next render
        self._rendering: list[_Connection] | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._rendered: collections.deque = collections.deque()
        self._accept_paused_until: float | None = None
        self._stopping = False
        listener.setblocking(False)
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._threads = [threading.Thread(target=self._serve, name=_IO_THREAD, daemon=True),
                         threading.Thread(target=self._render_loop, name="pybpf-metrics-render", daemon=True)]
        started = []
        try:
            for thread in self._threads:
                thread.start()
                started.append(thread)
        except RuntimeError as e:        # "can't start new thread": a task limit
            self._stop(started)
            raise OSError(errno.EAGAIN, f"cannot start the server's threads ({e})") from None

    def close(self) -> None:
        """Stop serving: every connection is closed, in-flight answers are dropped. Waits for no
        client; at most CLOSE_WAIT_S for each thread (a render in progress reads maps)."""
        self._stop(self._threads)

    def _stop(self, threads) -> None:
        self._stopping = True
        self._wake()
        self._jobs.put(None)
        for thread in threads:
            thread.join(CLOSE_WAIT_S)
        if not any(thread.is_alive() and thread.name == _IO_THREAD for thread in threads):
            # the render thread only ever wakes us: a send on a closed socket is an OSError it ignores
            for closable in (self._selector, self._listener, self._wake_read, self._wake_write):
                closable.close()

    # --- the I/O thread ---------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stopping:
                for key, events in self._selector.select(self._next_timeout()):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._service(key.data, events)
                self._resume_accepting()
                self._take_rendered()
                self._expire()
        except Exception as e:      # a bug of ours: stop serving, never take the tracer down
            self._report("stopped", f"WARNING: the metrics server stopped: {type(e).__name__}: {e}")
        finally:
            for conn in list(self._connections.values()):
                self._drop(conn)

    def _next_timeout(self) -> float:
        now = time.monotonic()
        times = [c.deadline for c in self._connections.values() if c.deadline is not None]
        if self._accept_paused_until is not None:
            times.append(self._accept_paused_until)
        return max(0.0, min(times, default=now + 1.0) - now)

    def _accept(self) -> None:
        for _ in range(self._max_connections):     # a batch, then the other sockets get a turn
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._report("accept", f"WARNING: metrics: cannot accept a connection ({os.strerror(e.errno)}); "
                                           "pausing new connections")
                    self._selector.unregister(self._listener)
                    self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE_S
                    return
                continue           # ECONNABORTED and the like: that client is gone
            if len(self._connections) >= self._max_connections and not self._evict_idle():
                self._refuse(sock)
                continue
            sock.setblocking(False)
            conn = _Connection(sock, time.monotonic() + self._timeout_s)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _evict_idle(self) -> bool:
        """Make room by dropping the oldest connection that has not sent a whole request yet (the
        dict keeps accept order). False when every one has: we are busy answering."""
        for conn in self._connections.values():
            if conn.request is None and not conn.outgoing:
                self._drop(conn)
                return True
        return False

    @staticmethod
    def _refuse(sock: socket.socket) -> None:
        """503 and close, without waiting. The request already here is read first: closing with
        unread input would reset the connection and discard the 503 (one arriving later still may)."""
        try:
            sock.setblocking(False)
            sock.recv(MAX_REQUEST_HEAD)
        except OSError:
            pass
        try:
            sock.send(BUSY)
        except OSError:
            pass
        sock.close()

    def _service(self, conn: _Connection, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                self._read(conn)
            elif events & selectors.EVENT_WRITE:
                self._write(conn)
        except OSError:               # reset, broken pipe: the client is gone
            self._drop(conn)
        except Exception as e:        # a bug of ours that one request found: drop that request only
            self._report("request", f"WARNING: a metrics request failed: {type(e).__name__}: {e}")
            self._drop(conn)

    def _read(self, conn: _Connection) -> None:
        data = conn.sock.recv(4096)
        if not data:
            self._drop(conn)
            return
        conn.received += data
        end = max(conn.received.find(b"\r\n\r\n"), conn.received.find(b"\n\n"))
        if end < 0:
            if len(conn.received) > MAX_REQUEST_HEAD:
                self._send(conn, _error(431))
            return
        try:
            conn.request = parse_request(conn.received[:end])
        except ValueError:
            self._send(conn, _error(400))
            return
        answer = _answer(conn.request)
        if answer is not None:
            self._send(conn, answer)
            return
        try:
            conn.variant = _Variant(conn.request)
        except Exception:             # prometheus_client's parse of an Accept header it cannot read
            self._send(conn, _error(406))
            return
        conn.deadline = None          # the render is our time, not the client's
        self._selector.unregister(conn.sock)
        self._waiting.append(conn)
        self._start_render()

    def _send(self, conn: _Connection, data: bytes) -> None:
        conn.outgoing = memoryview(data)
        conn.deadline = time.monotonic() + self._timeout_s
        if conn.sock.fileno() in self._selector.get_map():
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        else:
            self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.outgoing)
        except BlockingIOError:
            return
        conn.outgoing = conn.outgoing[sent:]
        if not conn.outgoing:
            self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        self._connections.pop(conn.sock.fileno(), None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass                      # waiting for a render: not registered
        conn.sock.close()

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._connections.values() if c.deadline is not None and c.deadline <= now]:
            self._drop(conn)

    def _resume_accepting(self) -> None:
        if self._accept_paused_until is not None and time.monotonic() >= self._accept_paused_until:
            self._accept_paused_until = None
            self._selector.register(self._listener, selectors.EVENT_READ, "listener")

    def _start_render(self) -> None:
        if self._rendering is not None or not self._waiting:
            return
        self._rendering, self._waiting = self._waiting, []
        variants = {conn.variant.key: conn.variant for conn in self._rendering}
        self._jobs.put(list(variants.values()))

    def _take_rendered(self) -> None:
        while self._rendered:
            bodies = self._rendered.popleft()
            batch, self._rendering = self._rendering, None
            for conn in batch:
                if conn.sock.fileno() < 0:
                    continue
                body = bodies.get(conn.variant.key)
                if body is None:
                    self._send(conn, _error(500))
                else:
                    self._send(conn, conn.variant.response(body, head_only=conn.request.method == "HEAD"))
            self._start_render()

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"\0")
        except OSError:               # full (a wake is pending anyway) or closed
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except OSError:
            pass

    # --- the render thread ------------------------------------------------------------------------

    def _render_loop(self) -> None:
        while (variants := self._jobs.get()) is not None:
            self._rendered.append(self._render(variants))
            self._wake()

    def _render(self, variants: list[_Variant]) -> dict:
        """{variant key: body}; a variant missing is answered 500 (one format failing spares the others)."""
        bodies = {}
        try:
            snapshot = _Snapshot(self._collect())
            for variant in variants:
                try:
                    bodies[variant.key] = variant.encode(snapshot)
                except Exception as e:
                    self._report("encode", f"WARNING: a metrics scrape failed ({variant.content_type}): "
                                           f"{type(e).__name__}: {e}")
        except Exception as e:
            self._report("render", f"WARNING: a metrics scrape failed: {type(e).__name__}: {e}")
        return bodies

    def _report(self, kind: str, text: str) -> None:
        """Each kind of failure once: a client can repeat it at will."""
        if kind not in self._warned:
            self._warned.add(kind)
            try:
                self._warn(text)
            except Exception:
                pass


def listen_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6, as the host resolves). OSError if it
    cannot be bound."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


class UnixListener:
    """A listening Unix socket at `path`, created 0600 (only our uid can connect), removed by
    close() if the path still names it.

    An existing path is replaced only if it is a socket of our uid that nobody listens on (a
    previous run's); anything else (a file, a link, another user's socket, a live server) is
    refused: bind() never follows a link, and we never unlink what we did not create."""

    def __init__(self, path: str):
        self.path = path
        _remove_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)       # the mode at creation: no moment when others could connect
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            st = os.lstat(path)
            self._identity = (st.st_dev, st.st_ino)
            if stat.S_IMODE(st.st_mode) != 0o600:     # e.g. a default ACL on the folder
                self.unlink()
                raise OSError(errno.EPERM, f"the socket was created mode {stat.S_IMODE(st.st_mode):o}, not "
                              "600 (a default ACL on its folder?)")
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        self.socket = sock

    def unlink(self) -> None:
        """Unlink the path if it is still our socket."""
        try:
            st = os.lstat(self.path)
            if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass


def _remove_stale_socket(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket of uid {os.geteuid()}: not replacing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)              # a previous run's: nobody listens
            return
        except OSError:
            pass
    raise OSError(errno.EADDRINUSE, f"{path} is in use by another server")
