"""Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through its memory mapping.

    with RingBufferReader(map_fd, size) as ring:
        while running:
            ring.poll(0.1, lambda record: handle(bytes(record)))   # waits at most 0.1 s

Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (ours to write); from offset PAGE, read-only,
the producer page (producer_pos) and then the data area, which the kernel offers mapped twice in a
row; pybpf maps it once (see __init__) and joins a record that wraps around its end. Each record has
an 8-byte header: u32 length (low 30 bits), busy bit 31 (being written), discard bit 30; records are
8-byte aligned.
"""

from __future__ import annotations

import _thread
import collections
import mmap
import os
import select
import struct
import sys
import threading
from array import array
from collections.abc import Callable, Iterator

from pybpf.uapi.bpf import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ

_U32 = struct.Struct("<I")
_LENGTH_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF
DRAIN_WAIT_S = 0.5       # the drain thread's longest sleep (stop() wakes it at once)
# committed_end looks for the rest of a run of equal headers in bulk once per _RUN of them, if the
# header _RUN records ahead is equal too: a bulk check costs about what walking 10 records does. It
# checks in batches that double while they match, up to a bound on each one's pattern.
_RUN = 16
_FIRST_BATCH = 32
_MAX_BATCH = 1 << 16

# A record callback gets a memoryview valid only during the call (the space is reused afterwards).
RecordCallback = Callable[[memoryview], None]


class RingBufferReader:
    def __init__(self, map_fd: int, size: int):
        if size <= 0 or size & (size - 1) or size % mmap.PAGESIZE:
            raise ValueError(f"ring buffer size {size} is not a power of two multiple of the page size")
        self._mask = size - 1
        self._size = size
        self._consumer = mmap.mmap(map_fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            # The kernel offers the data area mapped twice (so a wrapping record reads as one
            # slice); mapping it once halves the resident size a large ring adds to pybpf's RSS,
            # at the price of joining the rare wrapping record by hand (_slice).
            self._producer = mmap.mmap(map_fd, mmap.PAGESIZE + size, mmap.MAP_SHARED, mmap.PROT_READ,
                                       offset=mmap.PAGESIZE)
        except BaseException:
            self._consumer.close()
            raise
        self._data = memoryview(self._producer)[mmap.PAGESIZE:]
        self._words = self._data.cast("I")     # record headers, for committed_end
        # The positions, each read and written in one 8-byte access: struct.pack_into zeroes its target
        # before writing it, and a producer that read consumer_pos 0 meanwhile would find the ring full
        # (once past its first lap) and drop its record.
        self._consumer_pos = memoryview(self._consumer).cast("Q")
        self._producer_pos = memoryview(self._producer)[:8].cast("Q")
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def fileno(self) -> int:
        """An epoll fd that is readable when records are waiting, for the caller's own event loop."""
        return self._epoll.fileno()

    def poll(self, timeout_s: float, callback: RecordCallback) -> int:
        """Wait up to timeout_s for records, then consume those there; returns how many were read.
        Wakeups can be batched by the kernel, so records already there are read without waiting."""
        if not self._available():
            self._epoll.poll(timeout_s)
        return self.consume(callback)

    def consume(self, callback: RecordCallback) -> int:
        """Read the records committed when it is called, without waiting; returns how many went to
        the callback. Records written meanwhile wait for the next call: a stream the callback itself
        feeds (printing a record makes the traced events that write more) must not keep the caller
        from ever checking for exit() or a stop signal."""
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        count = 0
        while consumer < producer:
            at = consumer & self._mask
            header = _U32.unpack_from(self._data, at)[0]
            if header & BPF_RINGBUF_BUSY_BIT:
                break                  # still being written: the records after it wait too
            length = header & _LENGTH_MASK
            if not header & BPF_RINGBUF_DISCARD_BIT:
                record = self._slice(at + BPF_RINGBUF_HDR_SZ, length)
                try:
                    callback(record)
                finally:
                    record.release()   # enforces "valid only during the call"; lets close() unmap
                count += 1
            consumer += (length + BPF_RINGBUF_HDR_SZ + 7) & ~7
            # Release the space record by record, so a busy producer is not refused meanwhile.
            self._consumer_pos[0] = consumer
        return count

    def take_committed(self) -> bytes:
        """Copy out every committed record (headers included) up to the first one still being
        written, and release their space at once: the producer gets the whole ring back before
        any record is handled. Parse the copy with iter_records."""
        consumer = self._consumer_pos[0]
        end = committed_end(self._words, consumer, self._producer_pos[0])
        if end == consumer:
            return b""
        at = consumer & self._mask
        chunk = bytes(self._slice(at, end - consumer))
        self._consumer_pos[0] = end
        return chunk

    def _slice(self, at: int, length: int) -> memoryview:
        """length bytes of the data area from offset at, joined across its end if they wrap."""
        at &= self._mask
        if at + length <= self._size:
            return self._data[at:at + length]
        return memoryview(bytes(self._data[at:]) + bytes(self._data[:at + length - self._size]))

    def _available(self) -> bool:
        return self._consumer_pos[0] < self._producer_pos[0]

    def close(self) -> None:
        if self._epoll.closed:
            return
        self._epoll.close()
        for view in (self._consumer_pos, self._producer_pos, self._words, self._data):
            view.release()
        self._producer.close()
        self._consumer.close()

    def __enter__(self) -> "RingBufferReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def committed_end(words: memoryview, consumer: int, producer: int) -> int:
    """Where the committed records from consumer on end: at the first record still being written, or at
    producer. words: the data area (a power of two bytes long) as native u32, the headers' own order.

    A record at a time in Python is too slow for a burst of millions per second, but the records of
    a burst mostly share their header word (one printf: one length), so once some equal headers
    came in a row the rest of the run is checked in C, a batch of header words at a time."""
    mask = len(words) * 4 - 1
    # Locals and no call: between runs this loop goes a record at a time, so each lookup shows.
    busy, length_mask, header_and_padding = BPF_RINGBUF_BUSY_BIT, _LENGTH_MASK, BPF_RINGBUF_HDR_SZ + 7
    end, previous, repeats = consumer, None, 0
    while end < producer:
        header = words[(end & mask) >> 2]
        if header & busy:
            break
        step = ((header & length_mask) + header_and_padding) & ~7
        end += step
        if header != previous:
            previous, repeats = header, 0
        elif (repeats := repeats + 1) == _RUN:
            repeats = 0
            end += step * _rest_of_run(words, end, step, header, producer)
    return end


def _rest_of_run(words: memoryview, end: int, step: int, header: int, producer: int) -> int:
    """How many records from end on have this header, counted in bulk; 0 if the header _RUN records
    ahead differs: the run most likely ends before it, and walking there costs less."""
    mask = len(words) * 4 - 1
    ahead = end + _RUN * step
    if ahead >= producer or words[(ahead & mask) >> 2] != header:
        return 0
    # at most the records of this step that fit before producer: past it nothing is written
    return _equal_headers(words, end & mask, step, header, (producer - end) // step)


def _equal_headers(words: memoryview, at: int, step: int, header: int, limit: int) -> int:
    """How many records from data offset at on, at most limit and none past the end of the data
    area (a run resumes after the wrap), have this header word."""
    headers = words[at >> 2::step >> 2][:limit]
    count, batch = 0, _FIRST_BATCH
    while count < len(headers):
        got = headers[count:count + batch]
        want = memoryview(array("I", [header]) * len(got))
        if got != want:
            return count + _matching_prefix(got, want)
        count += len(got)
        batch = min(2 * batch, _MAX_BATCH)
    return count


def _matching_prefix(got: memoryview, want: memoryview) -> int:
    """The length of the longest common prefix of two unequal views of one length. Bisecting only the
    part in doubt compares n/2 + n/4 + ... items: linear, not n log n."""
    known, differs_before = 0, len(got)    # got[:known] == want[:known]; a difference lies in between
    while differs_before - known > 1:
        middle = (known + differs_before) // 2
        if got[known:middle] == want[known:middle]:
            known = middle
        else:
            differs_before = middle
    return known


def iter_records(chunk: bytes) -> Iterator[memoryview]:
    """The records of a take_committed() copy, discarded ones skipped."""
    view, at = memoryview(chunk), 0
    while at < len(chunk):
        header = _U32.unpack_from(chunk, at)[0]
        length = header & _LENGTH_MASK
        if not header & BPF_RINGBUF_DISCARD_BIT:
            yield view[at + BPF_RINGBUF_HDR_SZ:at + BPF_RINGBUF_HDR_SZ + length]
        at += (length + BPF_RINGBUF_HDR_SZ + 7) & ~7


class DrainingReader:
    """A ring buffer emptied by a thread of its own, so that handling records (formatting,
    writing) never holds the producer back: without it a burst fills the ring while the records
    before it are printed, and the rest is lost. The thread only copies records out (a memcpy
    under the GIL); the caller handles them in poll().
    Copying pauses past max_held bytes unhandled (default 8 rings, at least 64 MiB): overload loses events, not memory.

        reader = DrainingReader(RingBufferReader(fd, size))
        reader.poll(0.2, handle)        # or poll() reader.fileno() first
        reader.close()                  # stops the thread, handles nothing more
    """

    def __init__(self, ring: RingBufferReader, max_held: int | None = None):
        self.ring = ring
        self._chunks: collections.deque[bytes] = collections.deque()
        self._max_held = max(8 * ring._size, 64 << 20) if max_held is None else max_held
        self._held = 0                           # bytes in _chunks
        self._room = threading.Condition()      # guards _held; notified as poll() frees space
        self._notify_r, self._notify_w = os.pipe()
        os.set_blocking(self._notify_r, False)
        os.set_blocking(self._notify_w, False)
        # poll, not select: select() refuses fds from 1024 on (many maps, or a host with many files)
        self._notified = select.poll()
        self._notified.register(self._notify_r, select.POLLIN)
        self._stopping = threading.Event()
        # stop() writes here to end the thread's wait at once rather than at its next timeout
        self._stop_r, self._stop_w = os.pipe()
        ring._epoll.register(self._stop_r, select.EPOLLIN)
        # A thread waiting for the GIL gets it after at most this long.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        # Started without waiting for it to run, as threading.Thread.start() does (0.3 ms on an idle
        # machine, several ms on a busy one, before the probes are even attached): the thread holds
        # _draining until it ends, and stop() waits on that. A daemon thread, as threading's.
        self._draining = _thread.allocate_lock()
        self._draining.acquire()
        _thread.start_new_thread(self._drain_until_stopped, ())

    def _drain_until_stopped(self) -> None:
        try:
            self._drain()
        finally:
            self._draining.release()

    def _drain(self) -> None:
        ring = self.ring
        while self._wait_for_room():
            ring._epoll.poll(DRAIN_WAIT_S)
            chunk = ring.take_committed()
            if chunk:
                with self._room:
                    self._chunks.append(chunk)
                    self._held += len(chunk)
                try:
                    os.write(self._notify_w, b"\0")
                except BlockingIOError:
                    pass            # the reader has wake-ups pending already

    def _wait_for_room(self) -> bool:
        """Wait while the copies held reach max_held; False once stopping."""
        with self._room:
            while self._held >= self._max_held and not self._stopping.is_set():
                self._room.wait()
        return not self._stopping.is_set()

    def fileno(self) -> int:
        """Readable when copied records are waiting."""
        return self._notify_r

    def poll(self, timeout_s: float, callback: RecordCallback) -> int:
        if not self._chunks:
            self._notified.poll(timeout_s * 1000)
        try:
            os.read(self._notify_r, 1 << 16)
        except BlockingIOError:
            pass
        count = 0
        # Only the chunks copied by now: the thread keeps adding while a stream lasts, and the
        # caller must get back to its checks (exit(), stop signals) between batches.
        for _ in range(len(self._chunks)):
            chunk = self._chunks.popleft()
            try:
                for record in iter_records(chunk):
                    callback(record)
                    count += 1
            finally:
                with self._room:
                    self._held -= len(chunk)
                    self._room.notify()
        return count

    def stop(self) -> None:
        """Stop the thread; records it had copied stay for poll(), new ones for ring.consume()."""
        self._stopping.set()
        with self._room:
            self._room.notify()
        os.write(self._stop_w, b"\0")
        with self._draining:        # until the thread has ended
            pass

    def close(self) -> None:
        if self._draining.locked():
            self.stop()
        for fd in (self._notify_r, self._notify_w, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._notify_r = self._notify_w = self._stop_r = self._stop_w = -1
        self.ring.close()
