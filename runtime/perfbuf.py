"""The perf buffers behind a BPF_MAP_TYPE_PERF_EVENT_ARRAY (what bpf_skb_output writes to): one
software BPF_OUTPUT event per online CPU, its fd stored in the map at that CPU, its ring mapped.

    buffers = PerfBuffers(map_fd)
    buffers.read(lambda raw: ...)       # each sample's raw bytes, oldest first, CPU by CPU
    buffers.lost                        # samples the kernel dropped (PERF_RECORD_LOST)
    buffers.close()

A ring is a metadata page (data_head written by the kernel, data_tail by us) and DATA_PAGES pages of
records, each a perf_event_header {u32 type, u16 misc, u16 size}; a record may wrap past the end.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Callable

from pybpf.runtime import maps
from pybpf.runtime.attach.perf_event import online_cpus
from pybpf.runtime.syscall import ioctl, perf_event_open
from pybpf.uapi.perf_event import (PERF_EVENT_IOC_ENABLE, PERF_MMAP_DATA_HEAD, PERF_MMAP_DATA_TAIL,
                                   PERF_RECORD_LOST, PERF_RECORD_SAMPLE, PERF_SAMPLE_RAW, PerfEventAttr,
                                   PerfSwId, PerfType)

DATA_PAGES = 64              # 256 KiB a CPU: a power of two, as the kernel requires
_HEADER = struct.Struct("<IHH")
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


class PerfBuffers:
    def __init__(self, map_fd: int, pages: int = DATA_PAGES):
        self.size = pages * mmap.PAGESIZE
        self.rings: list[tuple[int, mmap.mmap]] = []
        self.lost = 0
        try:
            for cpu in online_cpus():
                attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PerfSwId.BPF_OUTPUT,
                                     sample_period=1, sample_type=PERF_SAMPLE_RAW, wakeup_events=1)
                fd = perf_event_open(attr, pid=-1, cpu=cpu)
                try:
                    ring = mmap.mmap(fd, mmap.PAGESIZE + self.size, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)
                except BaseException:
                    os.close(fd)
                    raise
                self.rings.append((fd, ring))
                maps.update(map_fd, cpu.to_bytes(4, "little"), fd.to_bytes(4, "little"))
                ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")
        except BaseException:
            self.close()
            raise

    def read(self, handle: Callable[[bytes], None]) -> None:
        """Every record written since the last read: a sample's raw bytes go to handle()."""
        for _, ring in self.rings:
            head = _U64.unpack_from(ring, PERF_MMAP_DATA_HEAD)[0]
            tail = _U64.unpack_from(ring, PERF_MMAP_DATA_TAIL)[0]
            while tail < head:
                kind, _, size = _HEADER.unpack(self._bytes(ring, tail, _HEADER.size))
                if size < _HEADER.size:
                    break           # not a record: give up on this ring until the next read
                record = self._bytes(ring, tail, size)
                if kind == PERF_RECORD_SAMPLE:
                    length = _U32.unpack_from(record, _HEADER.size)[0]
                    handle(record[_HEADER.size + 4:_HEADER.size + 4 + length])
                elif kind == PERF_RECORD_LOST:
                    self.lost += _U64.unpack_from(record, _HEADER.size + 8)[0]
                tail += size
            _U64.pack_into(ring, PERF_MMAP_DATA_TAIL, tail)

    def _bytes(self, ring: mmap.mmap, position: int, size: int) -> bytes:
        """size bytes of the data area from position, across its end if they wrap."""
        start = position % self.size
        first = ring[mmap.PAGESIZE + start:mmap.PAGESIZE + min(start + size, self.size)]
        return first + ring[mmap.PAGESIZE:mmap.PAGESIZE + size - len(first)]

    def close(self) -> None:
        while self.rings:
            fd, ring = self.rings.pop()
            ring.close()
            os.close(fd)
