"""The event ring buffer is sized to the script: one page when nothing but exit()'s record is ever
written to it (its pages are mapped by the tracer and count in its RSS), the requested size as soon
as a record with data is, and by default room for EVENT_RING_RECORDS_PER_CPU of its largest record
per CPU; 64 KiB when only warnings of failed helper calls may be."""

import mmap

import pytest

from pybpf.backend.codegen import event_ring_size
from pybpf.cpus import possible_cpu_ids
from pybpf.backend.codegen import WARNINGS_RINGBUF_SIZE
from pybpf.compiler import CompileOptions, compile_source
from pybpf.program import EVENT_RING_MAX_SIZE, EVENT_RING_RECORDS_PER_CPU, EVENTS_MAP

SIZE = 1 << 20
NO_DATA_RECORD = ["t:syscalls:sys_enter_getppid { @[comm] = count(); }",
                  "t:syscalls:sys_enter_getppid /pid == 1/ { @h = hist(pid); @s[tid] = sum(1); }",
                  "t:syscalls:sys_enter_getppid { @[comm] = count(); exit(); }"]


def event_buffer_size(source: str, warning_level: int = 1) -> int:
    options = CompileOptions(ringbuf_size=SIZE, warning_level=warning_level)
    return compile_source(source, options=options).object.maps[EVENTS_MAP].max_entries


@pytest.mark.parametrize("source", NO_DATA_RECORD + ["BEGIN { exit(); }"])
def test_a_script_that_writes_no_data_record_nor_warning_gets_one_page(source):
    assert event_buffer_size(source, warning_level=0) == mmap.PAGESIZE


@pytest.mark.parametrize("source", NO_DATA_RECORD)
def test_a_script_that_may_warn_of_full_maps_gets_room_for_warnings(source):
    assert event_buffer_size(source) == WARNINGS_RINGBUF_SIZE


def test_exit_alone_gets_one_page_whatever_the_warnings():
    assert event_buffer_size("BEGIN { exit(); }") == mmap.PAGESIZE


@pytest.mark.parametrize("source", ['BEGIN { printf("x\\n"); exit(); }', "i:s:1 { time(); }",
                                    "i:s:1 { @x = count(); print(@x); }", "i:s:1 { @x = count(); clear(@x); }",
                                    "t:syscalls:sys_enter_execve { join(args->argv); }"])
def test_a_script_that_writes_records_gets_the_requested_size(source):
    assert event_buffer_size(source) == SIZE


def default_event_buffer_size(source: str) -> int:
    return compile_source(source).object.maps[EVENTS_MAP].max_entries


def test_the_default_ring_holds_a_number_of_the_largest_records_per_cpu():
    # pid, tid, comm: our 8-byte header and slots of 8, 8 and 16; the kernel's 8-byte header
    small = 'i:s:1 { printf("%d %d %s\\n", pid, tid, comm); }'
    assert default_event_buffer_size(small) == event_ring_size(8 + 8 + 8 + 16, len(possible_cpu_ids()))
    assert event_ring_size(40, 2) == 2 << 20        # 2 x 16384 x 48 bytes, rounded up to a power of two
    # a printf of a string and a time record: the string's record sizes the ring
    larger = small + ' t:syscalls:sys_enter_openat { printf("%s\\n", str(args->filename)); time(); }'
    assert default_event_buffer_size(larger) == event_ring_size(8 + 64, len(possible_cpu_ids()))
    assert default_event_buffer_size(larger) > default_event_buffer_size(small)


@pytest.mark.parametrize("largest, cpus, size", [(8, 1, 256 << 10), (40, 1, 1 << 20), (40, 3, 4 << 20),
                                                 (4104, 2, EVENT_RING_MAX_SIZE), (8, 4096, EVENT_RING_MAX_SIZE)])
def test_event_ring_size_is_a_power_of_two_up_to_the_cap(largest, cpus, size):
    assert event_ring_size(largest, cpus) == size
    assert EVENT_RING_RECORDS_PER_CPU == 16384


def test_join_records_are_sized_too():
    # join()'s 4 KiB record, reserved in the ring rather than built on the stack
    assert default_event_buffer_size("t:syscalls:sys_enter_execve { join(args->argv); }") == \
        event_ring_size(8 + 8 + 16 * 256, len(possible_cpu_ids()))
