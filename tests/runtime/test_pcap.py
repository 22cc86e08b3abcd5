"""skboutput()'s user side without the kernel: the perf ring's records (wrapping past its end,
lost-sample records) and the pcap files they become."""

import mmap
import os
import struct

import pytest

from pybpf.runtime.pcap import PcapFiles
from pybpf.runtime.perfbuf import PerfBuffers
from pybpf.uapi.perf_event import (PERF_MMAP_DATA_HEAD, PERF_MMAP_DATA_TAIL, PERF_RECORD_LOST,
                                   PERF_RECORD_SAMPLE)

SIZE = 128          # a small data area, so that records wrap


def sample_record(raw: bytes) -> bytes:
    padded = raw + bytes(-(len(raw) + 4) % 8)       # the kernel pads u32 size + data to 8 bytes
    return struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, 8 + 4 + len(padded), len(padded)) + padded


def ring_with(records: bytes, start: int) -> bytearray:
    """A ring (metadata page, then SIZE bytes) holding records from position start on."""
    ring = bytearray(mmap.PAGESIZE + SIZE)
    for i, byte in enumerate(records):
        ring[mmap.PAGESIZE + (start + i) % SIZE] = byte
    struct.pack_into("<Q", ring, PERF_MMAP_DATA_TAIL, start)
    struct.pack_into("<Q", ring, PERF_MMAP_DATA_HEAD, start + len(records))
    return ring


def test_records_are_read_across_the_end_of_the_ring_and_the_tail_moves():
    buffers = PerfBuffers.__new__(PerfBuffers)
    buffers.size, buffers.lost = SIZE, 0
    records = sample_record(b"first") + struct.pack("<IHHQQ", PERF_RECORD_LOST, 0, 24, 7, 3) + \
        sample_record(b"second-sample")
    ring = ring_with(records, start=SIZE * 5 - 10)        # the first record wraps
    buffers.rings = [(-1, ring)]
    got = []
    buffers.read(got.append)
    assert [g.rstrip(b"\0") for g in got] == [b"first", b"second-sample"]
    assert buffers.lost == 3
    assert struct.unpack_from("<Q", ring, PERF_MMAP_DATA_TAIL)[0] == SIZE * 5 - 10 + len(records)


def test_pcap_files_hold_raw_ip_packets_past_their_offset(tmp_path):
    files = PcapFiles((str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap")))
    packet = bytes(range(40))
    # file 1, skip 14 bytes, at boot + 2.5 s, 40 bytes asked for; then the perf record's padding
    files.write(struct.pack("<QQQQ", 1, 14, 2_500_000_000, 40) + packet + bytes(4))
    files.close()
    data = (tmp_path / "b.pcap").read_bytes()
    assert struct.unpack_from("<IHHiIII", data) == (0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    seconds, micros, kept, wire = struct.unpack_from("<IIII", data, 24)
    assert (kept, wire) == (26, 26) and data[40:] == packet[14:]
    assert micros == (files.boot_ns // 1000 + 500_000) % 1_000_000
    assert (tmp_path / "a.pcap").read_bytes() == data[:24]


def test_a_pcap_file_is_not_written_through_a_symbolic_link(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    os.symlink(target, tmp_path / "link.pcap")
    with pytest.raises(OSError):
        PcapFiles((str(tmp_path / "link.pcap"),))
    assert target.read_bytes() == b"keep"
