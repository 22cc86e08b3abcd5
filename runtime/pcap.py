"""skboutput()'s files: pcap, LINKTYPE_RAW (packets from their IP header, no link layer), one
per file name the script gives, created (truncated) when the session starts.

    files = PcapFiles(("in.pcap",))
    files.write(sample)   # a sample: the header (file index, offset, boot ns, length), the bytes
    files.close()

A packet's time is its CLOCK_BOOTTIME stamp plus the boot time, as bpftrace's; the bytes before
its offset (an Ethernet header, say) are left out.
"""

from __future__ import annotations

import os
import struct
import time

PCAP_MAGIC = 0xA1B2C3D4          # microsecond timestamps
PCAP_VERSION = (2, 4)
SNAPLEN = 65535
LINKTYPE_RAW = 101
_FILE_HEADER = struct.Struct("<IHHiIII")      # magic, version, thiszone, sigfigs, snaplen, network
_PACKET_HEADER = struct.Struct("<IIII")       # seconds, microseconds, bytes kept, bytes on the wire
_SAMPLE_HEADER = struct.Struct("<QQQQ")       # pybpf.builtins.kernel SKB_HEADER_SIZE


class PcapFiles:
    def __init__(self, paths: tuple[str, ...]):
        self.files = []
        try:
            for path in paths:
                # not through a symbolic link someone left in a shared folder
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644)
                self.files.append(os.fdopen(fd, "wb"))
                self.files[-1].write(_FILE_HEADER.pack(PCAP_MAGIC, *PCAP_VERSION, 0, 0, SNAPLEN,
                                                       LINKTYPE_RAW))
        except BaseException:
            self.close()
            raise
        self.boot_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)

    def write(self, sample: bytes) -> None:
        if len(sample) < _SAMPLE_HEADER.size:
            return
        index, offset, boot_ns, length = _SAMPLE_HEADER.unpack_from(sample)
        if index >= len(self.files):
            return
        # the perf record pads the sample to 8 bytes: the length says where the packet ends
        packet = sample[_SAMPLE_HEADER.size + offset:_SAMPLE_HEADER.size + length]
        seconds, ns = divmod(boot_ns + self.boot_ns, 1_000_000_000)
        self.files[index].write(_PACKET_HEADER.pack(seconds, ns // 1000, len(packet), len(packet)) + packet)

    def flush(self) -> None:
        for f in self.files:
            f.flush()

    def close(self) -> None:
        while self.files:
            self.files.pop().close()
