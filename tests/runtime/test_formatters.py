"""The text user space makes of formatted values (strftime, strerror, syscall_name, username, macaddr,
inet)."""

import re
import socket
import time
from pathlib import Path

import pytest

from pybpf import types as T
from pybpf.runtime.formatters import render
from pybpf.runtime.values import decode, slot_decoder
from pybpf.uapi.unistd_64 import SYSCALL_NAMES


def u64(value: int) -> bytes:
    return (value & (1 << 64) - 1).to_bytes(8, "little")


def test_strftime_adds_microseconds_as_percent_f_and_keeps_a_literal_percent():
    boot_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME) + 1_234_000
    text = render(T.FormattedType("strftime", 8, "%S.%f %%f %Y"), u64(boot_ns))
    seconds, micros, literal, year = text.split(" ")[0].split(".") + text.split(" ")[1:]
    assert len(micros) == 6 and micros.isdigit()
    assert literal == "%f" and year == time.strftime("%Y")


def test_strerror_username_macaddr_and_inet():
    assert render(T.FormattedType("strerror"), u64(2)) == "No such file or directory"
    assert render(T.FormattedType("username"), u64(0)) == "root"
    assert render(T.FormattedType("username"), u64(4_000_000_000)) == "4000000000"
    assert render(T.FormattedType("macaddr", 6), bytes([0x18, 0xC0, 0x4D, 8, 0x2E, 0xBB])) == \
        "18:C0:4D:08:2E:BB"
    v4 = u64(socket.AF_INET) + bytes([127, 0, 0, 1]) + bytes(12)
    v6 = u64(socket.AF_INET6) + socket.inet_pton(socket.AF_INET6, "fe80::1")
    assert render(T.FormattedType("inet", 24), v4) == "127.0.0.1"
    assert render(T.FormattedType("inet", 24), v6) == "fe80::1"


def test_syscall_name_is_the_tables_name_or_bpftraces_unknown():
    # bpftrace 0.26: the syscall_64.tbl name (fstat, not the entry point newfstat), the number cast
    # to int32, "Unknown syscall" for a number the table lacks
    name = T.FormattedType("syscall_name")
    assert render(name, u64(110)) == "getppid"
    assert render(name, u64(5)) == "fstat" and render(name, u64(166)) == "umount2"
    assert render(name, u64((1 << 32) + 39)) == "getpid"
    assert render(name, u64(-1)) == render(name, u64(400)) == "Unknown syscall"


def test_syscall_names_are_the_kernel_headers_names():
    """Every number the installed uapi header defines (`#define __NR_fstat 5`) has its name."""
    header = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    if not header.exists():
        pytest.skip(f"no {header}")
    defined = {int(nr): name for name, nr in re.findall(r"#define __NR_(\w+) (\d+)", header.read_text())}
    assert len(defined) > 300
    assert {nr: SYSCALL_NAMES.get(nr) for nr in defined} == defined


def test_formatted_values_decode_in_slots_and_survive_the_compiled_programs_json():
    types = (T.IntType(), T.FormattedType("strerror"), T.FormattedType("macaddr", 6))
    raw = u64(7) + u64(1) + bytes([1, 2, 3, 4, 5, 6, 0, 0])
    assert slot_decoder(types)(raw) == (7, "Operation not permitted", "01:02:03:04:05:06")
    assert decode(types[1], u64(13)) == "Permission denied"
    for t in types:
        assert T.from_json(T.to_json(t)) == t


def test_printf_r_conversions_of_a_buffer():
    from pybpf.runtime.formatters import Buffer
    from pybpf.printf_format import parse_printf
    from pybpf.runtime.printf import format_printf
    value = Buffer(b"ab\x00\xfe")
    assert [c.char for c in parse_printf("%r %rx %rh %s")] == ["r", "rx", "rh", "s"]
    assert format_printf("[%r] [%rx] [%rh] [%12r]", (value,) * 4) == \
        "[ab\\x00\\xfe] [\\x61\\x62\\x00\\xfe] [61 62 00 fe] [  ab\\x00\\xfe]"
