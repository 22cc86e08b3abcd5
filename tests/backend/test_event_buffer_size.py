"""The event ring buffer is sized to the script: one page when nothing but exit()'s record is ever
written to it (its pages are mapped by the tracer and count in its RSS), 64 KiB when warnings of
failed helper calls may be, the requested size as soon as a record with data is."""

import mmap

import pytest

from pybpf.backend.codegen import WARNINGS_RINGBUF_SIZE
from pybpf.compiler import CompileOptions, compile_source
from pybpf.program import EVENTS_MAP

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
