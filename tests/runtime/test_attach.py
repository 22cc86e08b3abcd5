"""Attaching to real probes: events fired from this test and counted by the program in a map."""

import os
import struct
import time

import pytest
from bpfobj import count, load_one, program

from pybpf.program import EVENTS_MAP, AttachPoint
from pybpf.runtime.attach import attach
from pybpf.runtime.errors import NotSupportedError
from pybpf.runtime.ringbuf import RingBufferReader
from pybpf.uapi.bpf import BpfProgType

pytestmark = pytest.mark.kernel


def test_tracepoint_counts_exactly_our_events_on_every_cpu():
    obj, prog_fd = load_one("tracepoint/rt_getppid", BpfProgType.TRACEPOINT,
                            program(count="counts", only_pid=os.getpid()))
    affinity = os.sched_getaffinity(0)
    with obj:
        attachment = attach(prog_fd, AttachPoint("tracepoint", "syscalls:sys_enter_getppid",
                                                 attach_kind="tracepoint"))
        try:
            for cpu in sorted(affinity):       # one perf event on CPU 0 still sees every CPU
                os.sched_setaffinity(0, {cpu})
                for _ in range(5):
                    os.getppid()
        finally:
            os.sched_setaffinity(0, affinity)
            attachment.close()
        assert count(obj) == 5 * len(affinity)
        os.getppid()                           # detached: no longer counted
        assert count(obj) == 5 * len(affinity)


def test_interval_fires_periodically():
    obj, prog_fd = load_one("perf_event/rt_tick", BpfProgType.PERF_EVENT, program(count="counts"))
    with obj:
        attachment = attach(prog_fd, AttachPoint("interval", "ms:1", period_ns=1_000_000,
                                                 attach_kind="interval"))
        time.sleep(0.2)
        attachment.close()
        ticks = count(obj)
        assert 50 <= ticks <= 400, ticks
        time.sleep(0.02)
        assert count(obj) == ticks


def test_begin_runs_once_in_our_own_task():
    obj, prog_fd = load_one("raw_tracepoint/rt_begin", BpfProgType.RAW_TRACEPOINT,
                            program(count="counts", emit=(1, 0)))
    with obj, RingBufferReader(obj.map_fds[EVENTS_MAP], 1 << 16) as reader:
        attach(prog_fd, AttachPoint("BEGIN", attach_kind="begin")).close()
        records = []
        reader.consume(lambda r: records.append(struct.unpack("<IIQ", r)))
        assert records == [(1, 0, os.getpid())]
        assert count(obj) == 1


def test_unknown_provider_is_not_supported():
    with pytest.raises(NotSupportedError, match="'nosuchprobe' is not supported"):
        attach(-1, AttachPoint("nosuchprobe", "vfs_read", attach_kind="nosuchprobe"))


def test_missing_tracepoint_is_not_supported():
    obj, prog_fd = load_one("tracepoint/rt_x", BpfProgType.TRACEPOINT, program())
    with obj, pytest.raises(NotSupportedError, match="no tracepoint 'nosuch:event'"):
        attach(prog_fd, AttachPoint("tracepoint", "nosuch:event", attach_kind="tracepoint"))
