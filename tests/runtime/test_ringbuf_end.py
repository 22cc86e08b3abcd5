"""committed_end, the drain thread's search for the end of the committed records, against the plain
record-by-record walk, on synthetic data areas: runs of equal records (what it skips in bulk), random
lengths, discarded records, a busy record anywhere, records wrapping around the end of the area, and
a free part past producer whose words would pass for more records.

Budget: PYBPF_HYPOTHESIS_EXAMPLES=N (default 300)."""

import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.runtime.ringbuf import committed_end
from pybpf.uapi.bpf import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ

EXAMPLES = int(os.environ.get("PYBPF_HYPOTHESIS_EXAMPLES", "300"))
WORD = struct.Struct("=I")           # the kernel writes headers in the machine's order
LENGTH_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF


def space(header: int) -> int:
    return ((header & LENGTH_MASK) + BPF_RINGBUF_HDR_SZ + 7) & ~7


def walk(area: bytearray, consumer: int, producer: int) -> int:
    """The reference: the committed end found one header at a time."""
    end = consumer
    while end < producer:
        header = WORD.unpack_from(area, end & (len(area) - 1))[0]
        if header & BPF_RINGBUF_BUSY_BIT:
            break
        end += space(header)
    return end


def fill(area: bytearray, start: int, stop: int, word: int) -> None:
    for at in range(start, stop, 4):
        WORD.pack_into(area, at & (len(area) - 1), word)


def write_records(area: bytearray, consumer: int, headers: list[int], filler: int | None) -> int:
    """Write records with these header words from consumer on; returns producer. Bodies and the free
    rest of the area are filler words, or, if None, copies of the last header written, which look
    like more records of the run to a search that strays from the headers or past producer."""
    pos = consumer
    for header in headers:
        fill(area, pos, pos + 4, header)
        fill(area, pos + 4, pos + 8, 0x1234)        # pg_off: not part of the header word
        fill(area, pos + 8, pos + space(header), header if filler is None else filler)
        pos += space(header)
    last = headers[-1] if headers else 0
    fill(area, pos, consumer + len(area), last if filler is None else filler)
    return pos


runs = st.lists(st.tuples(st.integers(0, 70),                 # length
                          st.integers(1, 150),                # how many in a row
                          st.booleans()),                     # discarded
                max_size=12)


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([256, 4096]), runs=runs, busy=st.none() | st.integers(0, 10_000),
       consumer=st.integers(0, 3 * 4096).map(lambda n: n & ~7), filler=st.none() | st.integers(0, 2**32 - 1))
def test_agrees_with_the_record_by_record_walk(size, runs, busy, consumer, filler):
    headers, used = [], 0
    for length, count, discarded in runs:
        header = length | (BPF_RINGBUF_DISCARD_BIT if discarded else 0)
        for _ in range(count):
            if used + space(header) > size:
                break
            headers.append(header)
            used += space(header)
    if busy is not None and headers:
        headers[busy % len(headers)] |= BPF_RINGBUF_BUSY_BIT
    area = bytearray(size)
    producer = write_records(area, consumer, headers, filler)
    first_busy = next((i for i, h in enumerate(headers) if h & BPF_RINGBUF_BUSY_BIT), len(headers))
    expected = consumer + sum(space(h) for h in headers[:first_busy])
    assert committed_end(memoryview(area).cast("I"), consumer, producer) == walk(area, consumer, producer) \
        == expected


def test_a_run_longer_than_a_batch_stops_at_its_busy_record():
    size = 1 << 20                  # all zeros: 131072 empty records, so batches reach their bound
    consumer = 24                   # and the run wraps around the end of the area
    for busy in (0, 1, 17, 100_000, size // 8 - 1):
        area = bytearray(size)
        WORD.pack_into(area, (consumer + 8 * busy) % size, BPF_RINGBUF_BUSY_BIT)
        assert committed_end(memoryview(area).cast("I"), consumer, consumer + size) == consumer + 8 * busy
    assert committed_end(memoryview(bytearray(size)).cast("I"), consumer, consumer + size) == consumer + size


def test_a_run_stops_at_its_busy_record_among_the_last_laps_records():
    # The area is never cleared, so the records around a run are most likely the last lap's, of the
    # same length: a check looking in the wrong place would count them.
    size, length = 4096, 40
    for consumer in range(0, 3 * size, 1000):          # 8-aligned, over three laps
        for busy in range(0, size // space(length), 4):
            headers = [length] * (size // space(length))
            headers[busy] |= BPF_RINGBUF_BUSY_BIT
            area = bytearray(size)
            producer = write_records(area, consumer, headers, None)
            assert committed_end(memoryview(area).cast("I"), consumer, producer) == consumer + space(length) * busy
