"""The ring-buffer reader against a real BPF ring buffer, filled by a raw tracepoint program run with
BPF_PROG_TEST_RUN in this process."""

import os
import select
import struct
import subprocess
import sys
import time

import pytest
from bpfobj import build_object, program, standard_maps

from pybpf.backend.objspec import parse_object
from pybpf.program import EVENTS_MAP, LOST_MAP, CompiledProgram, BpfProgramSpec
from pybpf.runtime.attach.begin_end import run_once
from pybpf.runtime.loader import load
from pybpf.runtime.maps import read_lost
from pybpf.runtime.ringbuf import DrainingReader, RingBufferReader
from pybpf.uapi.bpf import BpfFunc, BpfProgType

pytestmark = pytest.mark.kernel

PAGE = os.sysconf("SC_PAGE_SIZE")
RECORD = struct.Struct("<IIQ")     # what program(emit=...) writes: kind, index, value
RECORD_SPACE = 8 + RECORD.size     # with the ring buffer's 8-byte header


# Samples consumer_pos from another process (in this one the GIL hides what happens within a call) until
# its stdin closes; prints how often it went back.
WATCHER = """
import mmap, select, sys
fd, page = int(sys.argv[1]), int(sys.argv[2])
position = memoryview(mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ)).cast("Q")
last = backwards = 0
print("watching", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for _ in range(10_000):
        now = position[0]
        backwards += now < last
        last = now
print(backwards)
"""


def loaded(body: str, ringbuf_size: int):
    elf = build_object(standard_maps(ringbuf_size), {"raw_tracepoint/rt_emit": body})
    compiled = CompiledProgram(elf, parse_object(elf),
                               (BpfProgramSpec("raw_tracepoint/rt_emit", BpfProgType.RAW_TRACEPOINT, ()),), ())
    return load(compiled.object, compiled)


@pytest.fixture
def emitter(request):
    """(prog fd, reader, loaded) for a program emitting one record per run."""
    size = getattr(request, "param", PAGE)
    obj = loaded(program(emit=(1, 7), emit_time=True), size)
    reader = RingBufferReader(obj.map_fds[EVENTS_MAP], size)
    yield obj.prog_fds["raw_tracepoint/rt_emit"], reader, obj
    reader.close()
    obj.close()


def collect(reader, *, wait: float = 0.0) -> list[tuple[int, int, int]]:
    records = []
    reader.poll(wait, lambda r: records.append(RECORD.unpack(r)))
    return records


def test_records_arrive_in_order_with_their_content(emitter):
    prog_fd, reader, _ = emitter
    for _ in range(5):
        run_once(prog_fd)
    records = collect(reader)
    assert [(kind, index) for kind, index, _ in records] == [(1, 7)] * 5
    times = [t for _, _, t in records]
    assert times == sorted(times) and times[0] > 0
    assert collect(reader) == []


def test_wraps_around_the_end_of_the_data_area(emitter):
    prog_fd, reader, _ = emitter
    per_round = PAGE // RECORD_SPACE - 10   # not a divisor of the size: records straddle the end
    seen = []
    for _ in range(12):
        for _ in range(per_round):
            run_once(prog_fd)
        seen += collect(reader)
    assert len(seen) == 12 * per_round
    assert [t for _, _, t in seen] == sorted(t for _, _, t in seen)


def test_full_buffer_counts_lost_records(emitter):
    prog_fd, reader, obj = emitter
    fits = PAGE // RECORD_SPACE
    for _ in range(fits + 30):
        run_once(prog_fd)
    assert read_lost(obj.map_fds[LOST_MAP]) == 30
    assert len(collect(reader)) == fits


def test_poll_waits_at_most_the_timeout_and_fileno_wakes_the_host_loop(emitter):
    prog_fd, reader, _ = emitter
    started = time.monotonic()
    assert collect(reader, wait=0.05) == []
    assert 0.04 < time.monotonic() - started < 0.5
    assert select.select([reader], [], [], 0)[0] == []
    run_once(prog_fd)
    assert select.select([reader], [], [], 1.0)[0] == [reader]
    assert len(collect(reader, wait=1.0)) == 1


def test_discarded_records_are_skipped():
    helper = "inttoptr (i64 {} to ptr)".format
    body = f"""
entry:
  %record = alloca [16 x i8], align 8
  %slot = call ptr {helper(int(BpfFunc.ringbuf_reserve))}(ptr @{EVENTS_MAP}, i64 16, i64 0)
  %none = icmp eq ptr %slot, null
  br i1 %none, label %emit, label %fill
fill:
  store i64 99, ptr %slot
  call void {helper(int(BpfFunc.ringbuf_discard))}(ptr %slot, i64 0)
  br label %emit
emit:
  store i64 5, ptr %record
  %second = getelementptr i8, ptr %record, i64 8
  store i64 6, ptr %second
  %r = call i64 {helper(int(BpfFunc.ringbuf_output))}(ptr @{EVENTS_MAP}, ptr %record, i64 16, i64 0)
  ret i64 0"""
    with loaded(body, PAGE) as obj, RingBufferReader(obj.map_fds[EVENTS_MAP], PAGE) as reader:
        run_once(obj.prog_fds["raw_tracepoint/rt_emit"])
        assert collect(reader) == [(5, 0, 6)]      # the discarded record before it is stepped over


def test_size_must_be_a_power_of_two_pages():
    with pytest.raises(ValueError):
        RingBufferReader(-1, 3 * PAGE)


def test_take_committed_and_iter_records_round_trip():
    # take_committed copies records out whole (headers included); iter_records reads them back
    import struct
    from pybpf.runtime.ringbuf import iter_records
    chunk = b"".join(struct.pack("<II", len(payload), 0) + payload.ljust((len(payload) + 7) & ~7, b"\0")
                     for payload in (b"abc", b"0123456789", b""))
    discarded = struct.pack("<II", 4 | (1 << 30), 0) + b"gone\0\0\0\0"
    assert [bytes(r) for r in iter_records(chunk + discarded)] == [b"abc", b"0123456789", b""]


def drained(drain, count: int) -> list[tuple[int, int, int]]:
    """count records from a DrainingReader, waiting at most a second for each batch."""
    records = []
    while len(records) < count and drain.poll(1.0, lambda r: records.append(RECORD.unpack(r))):
        pass
    return records


def test_draining_reader_takes_records_across_the_end_of_the_data_area(emitter):
    prog_fd, reader, _ = emitter
    per_round = PAGE // RECORD_SPACE - 10   # records straddle the end, and runs of equal headers wrap
    drain = DrainingReader(reader)
    try:
        seen = []
        for _ in range(12):
            for _ in range(per_round):
                run_once(prog_fd)
            seen += drained(drain, per_round)
        assert len(seen) == 12 * per_round
        assert [t for _, _, t in seen] == sorted(t for _, _, t in seen)
    finally:
        drain.close()


def test_draining_reader_stops_copying_past_max_held_until_poll(emitter):
    prog_fd, reader, obj = emitter
    fits = PAGE // RECORD_SPACE
    for _ in range(fits):
        run_once(prog_fd)                  # before the thread starts: it copies the whole ring at once
    drain = DrainingReader(reader, max_held=1)
    try:
        assert select.select([drain], [], [], 1.0)[0] == [drain]     # copied, and now over the cap
        for _ in range(fits):
            run_once(prog_fd)
        time.sleep(0.1)                    # long enough for a thread without a cap to empty the ring
        for _ in range(30):
            run_once(prog_fd)
        assert read_lost(obj.map_fds[LOST_MAP]) == 30    # it stayed full
        assert drain.poll(0, lambda r: None) == fits
        assert len(drained(drain, fits)) == fits          # poll() made room: copying resumed
        assert read_lost(obj.map_fds[LOST_MAP]) == 30
    finally:
        drain.close()


class FeedingCallback:
    """A callback that writes a new record for each one it reads, as printing an event makes the
    traced events that write more (`rawtracepoint:sched_switch { print(args); }`), until `cap`:
    past it a reader that chased the stream would have spun forever."""

    def __init__(self, prog_fd: int, cap: int = 200, pause: float = 0.0):
        self.prog_fd, self.cap, self.pause, self.fed = prog_fd, cap, pause, 0

    def __call__(self, record) -> None:
        if self.fed < self.cap:
            run_once(self.prog_fd)
            self.fed += 1
            time.sleep(self.pause)


def test_poll_returns_after_the_records_there_when_it_was_called(emitter):
    prog_fd, reader, _ = emitter
    for _ in range(10):
        run_once(prog_fd)
    feeding = FeedingCallback(prog_fd)
    assert reader.poll(0, feeding) == 10        # the 10 it fed wait for the next call
    assert reader.poll(0, feeding) == 10


def test_draining_reader_poll_returns_after_the_chunks_copied_when_it_was_called(emitter):
    prog_fd, reader, _ = emitter
    drain = DrainingReader(reader)
    try:
        for _ in range(10):
            run_once(prog_fd)
        feeding = FeedingCallback(prog_fd, pause=0.005)    # time for the thread to copy what it fed
        read = 0
        while read < 10:                        # the 10 may come in more than one chunk
            read += drain.poll(1.0, feeding)
        assert feeding.fed < feeding.cap
    finally:
        drain.close()


def test_the_consumer_position_never_goes_back(emitter):
    # A producer that read a consumer_pos lower than the real one (struct.pack_into zeroes its target
    # before writing it) would find the ring full, once past its first lap, and drop its record.
    prog_fd, reader, obj = emitter
    fd = obj.map_fds[EVENTS_MAP]
    with subprocess.Popen([sys.executable, "-c", WATCHER, str(fd), str(PAGE)], pass_fds=[fd],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as watcher:
        assert watcher.stdout.readline() == "watching\n"
        for i in range(4000):
            run_once(prog_fd)
            if i % 2:
                reader.take_committed()
            else:
                reader.consume(lambda record: None)
        assert int(watcher.communicate("")[0]) == 0


@pytest.fixture
def past_fd_1024():
    """This process with more than 1024 files open, as an embedding process may be: select() refuses
    fds from 1024 on. The soft RLIMIT_NOFILE is raised for the test and restored after it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    yield
    for fd in fds:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_readers_wait_on_fds_past_1024(past_fd_1024):
    obj = loaded(program(emit=(1, 7), emit_time=True), PAGE)
    try:
        assert obj.map_fds[EVENTS_MAP] > 1024
        prog_fd = obj.prog_fds["raw_tracepoint/rt_emit"]
        reader = RingBufferReader(obj.map_fds[EVENTS_MAP], PAGE)
        assert collect(reader, wait=0.01) == []          # waits, nothing there
        run_once(prog_fd)
        assert len(collect(reader, wait=1.0)) == 1
        drain = DrainingReader(reader)
        try:
            assert drain.fileno() > 1024
            assert drained(drain, 0) == [] and drain.poll(0.01, print) == 0
            run_once(prog_fd)
            assert len(drained(drain, 1)) == 1
        finally:
            drain.close()
    finally:
        obj.close()
