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

import collections
import mmap
import os
import select
import struct
import sys
import threading
from typing import Callable, Iterator

from pybpf.uapi.bpf import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ

_U32 = struct.Struct("<I")
_LENGTH_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF
DRAIN_WAIT_S = 0.5       # the drain thread's longest sleep (stop() wakes it at once)

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
        """Wait up to timeout_s for records, then consume all of them; returns how many were read.
        Wakeups can be batched by the kernel, so records already there are read without waiting."""
        if not self._available():
            self._epoll.poll(timeout_s)
        return self.consume(callback)

    def consume(self, callback: RecordCallback) -> int:
        """Read every committed record, without waiting; returns how many went to the callback."""
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
            if consumer >= producer:
                producer = self._producer_pos[0]
        return count

    def take_committed(self) -> bytes:
        """Copy out every committed record (headers included) up to the first one still being
        written, and release their space at once: the producer gets the whole ring back before
        any record is handled. Parse the copy with iter_records."""
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        end = consumer
        while end < producer:
            header = _U32.unpack_from(self._data, end & self._mask)[0]
            if header & BPF_RINGBUF_BUSY_BIT:
                break
            end += ((header & _LENGTH_MASK) + BPF_RINGBUF_HDR_SZ + 7) & ~7
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
        for view in (self._consumer_pos, self._producer_pos, self._data):
            view.release()
        self._producer.close()
        self._consumer.close()

    def __enter__(self) -> "RingBufferReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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

        reader = DrainingReader(RingBufferReader(fd, size))
        reader.poll(0.2, handle)        # or select() on reader.fileno() first
        reader.close()                  # stops the thread, handles nothing more
    """

    def __init__(self, ring: RingBufferReader):
        self.ring = ring
        self._chunks: collections.deque[bytes] = collections.deque()
        self._notify_r, self._notify_w = os.pipe()
        os.set_blocking(self._notify_r, False)
        os.set_blocking(self._notify_w, False)
        self._stopping = threading.Event()
        # stop() writes here to end the thread's wait at once rather than at its next timeout
        self._stop_r, self._stop_w = os.pipe()
        ring._epoll.register(self._stop_r, select.EPOLLIN)
        # A thread waiting for the GIL gets it after at most this long.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self._thread = threading.Thread(target=self._drain, name="ringbuf-drain", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        ring = self.ring
        while not self._stopping.is_set():
            ring._epoll.poll(DRAIN_WAIT_S)
            chunk = ring.take_committed()
            if chunk:
                self._chunks.append(chunk)
                try:
                    os.write(self._notify_w, b"\0")
                except BlockingIOError:
                    pass            # the reader has wake-ups pending already

    def fileno(self) -> int:
        """Readable when copied records are waiting."""
        return self._notify_r

    def poll(self, timeout_s: float, callback: RecordCallback) -> int:
        if not self._chunks:
            select.select([self._notify_r], [], [], timeout_s)
        try:
            os.read(self._notify_r, 1 << 16)
        except BlockingIOError:
            pass
        count = 0
        while self._chunks:
            for record in iter_records(self._chunks.popleft()):
                callback(record)
                count += 1
        return count

    def stop(self) -> None:
        """Stop the thread; records it had copied stay for poll(), new ones for ring.consume()."""
        self._stopping.set()
        os.write(self._stop_w, b"\0")
        self._thread.join()

    def close(self) -> None:
        if self._thread.is_alive():
            self.stop()
        for fd in (self._notify_r, self._notify_w, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._notify_r = self._notify_w = self._stop_r = self._stop_w = -1
        self.ring.close()
