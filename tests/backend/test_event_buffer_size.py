"""The event ring buffer is sized to the script: one page when nothing but exit()'s record is ever
written to it (its pages are mapped by the tracer and count in its RSS), the requested size as soon
as a record with data is."""

import mmap

import pytest

from pybpf.compiler import CompileOptions, compile_source
from pybpf.program import EVENTS_MAP

SIZE = 1 << 20


def event_buffer_size(source: str) -> int:
    return compile_source(source, options=CompileOptions(ringbuf_size=SIZE)).object.maps[EVENTS_MAP].max_entries


@pytest.mark.parametrize("source", ["t:syscalls:sys_enter_getppid { @[comm] = count(); }",
                                    "t:syscalls:sys_enter_getppid /pid == 1/ { @h = hist(pid); @s[tid] = sum(1); }",
                                    "t:syscalls:sys_enter_getppid { @[comm] = count(); exit(); }"])
def test_a_script_that_writes_no_data_record_gets_one_page(source):
    assert event_buffer_size(source) == mmap.PAGESIZE


@pytest.mark.parametrize("source", ['BEGIN { printf("x\\n"); exit(); }', "i:s:1 { time(); }",
                                    "i:s:1 { @x = count(); print(@x); }", "i:s:1 { @x = count(); clear(@x); }",
                                    "t:syscalls:sys_enter_execve { join(args->argv); }"])
def test_a_script_that_writes_records_gets_the_requested_size(source):
    assert event_buffer_size(source) == SIZE
