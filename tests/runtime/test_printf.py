"""printf formatting, checked against what bpftrace 0.17 printed here for the same call.

Rows marked glibc use flags bpftrace 0.17 rejects (`+`, space, `#`, `%i`); their expected text is what
glibc's snprintf prints for the same format with an `l` length modifier (64-bit argument).
"""

import pytest

from pybpf.printf_format import Conversion, PrintfFormatError, parse_printf
from pybpf.runtime.printf import format_printf

BPFTRACE_0_17 = [
    ("%5d|%-8s|%x\n", (42, "hi", 255), "   42|hi      |ff\n"),
    ("%c|%5c|%-3c|\n", (65, 66, 67), "A|    B|C  |\n"),
    ("%c%c\n", (104, 105), "hi\n"),
    ("%p|%p\n", (0, 4096), "(nil)|0x1000\n"),
    ("%10p|%-10p|\n", (4096, 4096), "    0x1000|0x1000    |\n"),
    ("%lp|\n", (4096,), "0x1000|\n"),
    ("%%|\n", (), "%|\n"),
    ("%s|%10s|%-10s|%.2s|%10.2s|\n", ("hello", "hi", "hi", "hello", "hello"),
     "hello|        hi|hi        |he|        he|\n"),
    ("%s|%5s\n", ("", ""), "|     \n"),
    ("%5s|%-5d|\n", ("toolongstr", 123456), "toolongstr|123456|\n"),
    ("%ld %lld %lu %hd %hhd\n", (1, 2, 3, 70000, 300), "1 2 3 4464 44\n"),
    ("%hu %hhx %lx\n", (70000, 300, -1), "4464 2c ffffffffffffffff\n"),
    ("%hhu|\n", (-1,), "255|\n"),
    ("%X|%lX|%lo\n", (255, -1, -1), "FF|FFFFFFFFFFFFFFFF|1777777777777777777777\n"),
    ("%05d|%5d|%-5d|\n", (-5, 5, 5), "-0005|    5|5    |\n"),
    ("%08d|\n", (-3,), "-0000003|\n"),
    ("%-08d|\n", (3,), "3       |\n"),
    ("%.3d|\n", (5,), "005|\n"),
    ("%8.3d|\n", (5,), "     005|\n"),
    ("%5.2d|\n", (5,), "   05|\n"),
    ("%.0d|\n", (0,), "|\n"),
    ("%lu\n", (4294967295,), "4294967295\n"),
    ("%d %d %d %d %d %d %d %d\n", (1, 2, 3, 4, 5, 6, 7, 8), "1 2 3 4 5 6 7 8\n"),
]

# bpftrace 0.17 handed 64-bit values to the C library under the user's format, so without `l` it
# printed the low 32 bits: "4294967295 ffffffff FFFFFFFF 37777777777 -1" and "5|5|5|4294967301".
# Current bpftrace formats every integer as 64-bit; so does pybpf.
SIXTY_FOUR_BIT = [
    ("%u %x %X %o %d\n", (-1,) * 5,
     "18446744073709551615 ffffffffffffffff FFFFFFFFFFFFFFFF 1777777777777777777777 -1\n"),
    ("%d|%u|%x|%ld\n", (4294967301,) * 4, "4294967301|4294967301|100000005|4294967301\n"),
    ("%d\n", (-2 ** 63,), "-9223372036854775808\n"),
]

GLIBC = [
    ("%i|%+d|% d|%+i\n", (-7, 5, 5, -5), "-7|+5| 5|-5\n"),
    ("%+05d|% 05d|%-+5d|\n", (5, 5, 5), "+0005| 0005|+5   |\n"),
    ("%#x|%#X|%#o|%#x|%#o\n", (255, 255, 8, 0, 0), "0xff|0XFF|010|0|0\n"),
    ("%#08x|%#8x|%#.3o|%#.0o\n", (1, 1, 8, 0), "0x000001|     0x1|010|0\n"),
    ("%08.3d|%-8.3d|\n", (7, 7), "     007|007     |\n"),
    ("%+u|% x\n", (5, 255), "5|ff\n"),
    ("%hhd|%hd|%hhx\n", (255, 65535, -1), "-1|-1|ff\n"),
    ("%.2s|%6s|%-6s|\n", ("éa", "é", "é"), "é|    é|é    |\n"),    # widths count bytes
]


@pytest.mark.parametrize("fmt,args,expected", BPFTRACE_0_17 + SIXTY_FOUR_BIT + GLIBC)
def test_format_printf(fmt, args, expected):
    assert format_printf(fmt, args) == expected


def test_parse_printf_gives_each_conversion_and_its_span():
    fmt = "pid %-6d comm %s %% %08lx\n"
    convs = parse_printf(fmt)
    assert [c.char for c in convs] == ["d", "s", "x"]
    assert [fmt[slice(*c.span)] for c in convs] == ["%-6d", "%s", "%08lx"]
    assert [c.expects for c in convs] == ["int", "str", "int"]
    assert convs[2] == Conversion("x", 20, 25, "0", 8, None, "l")


def test_parse_printf_without_conversions():
    assert parse_printf("no arguments %% here\n") == []


@pytest.mark.parametrize("fmt,message,offset", [
    ("abc%", "incomplete conversion at the end of the format", 3),
    ("%d %5%", "'%%' takes no flags, width or precision", 3),
    ("x %q", "unknown conversion '%q'", 2),
    ("%f", "unknown conversion '%f'", 0),
    ("%*d", "'*' width or precision is not supported: write a number", 0),
    ("%.*d", "'*' width or precision is not supported: write a number", 0),
])
def test_bad_formats(fmt, message, offset):
    with pytest.raises(PrintfFormatError) as err:
        parse_printf(fmt)
    assert (err.value.message, err.value.offset) == (message, offset)


@pytest.mark.parametrize("fmt", ["%99999999999999999999d", "%.65536d", "%65536s", "%" + "9" * 5000 + "d"])
def test_widths_and_precisions_past_the_limit_are_refused_at_parse(fmt):
    with pytest.raises(PrintfFormatError, match=r"is too large \(at most 65535\)"):
        parse_printf(fmt)


def test_the_largest_width_is_accepted():
    assert len(format_printf("%65535d", (1,))) == 65535


def test_bytes_that_are_not_utf8_go_through_as_bytes():
    raw = "caf\udce9\udcff"                   # decode_string's b"caf\xe9\xff"
    out = format_printf("[%s|%-6s|%.4s|%c]", (raw, raw, raw, 0xE9))
    assert out.encode("utf-8", "surrogateescape") == b"[caf\xe9\xff|caf\xe9\xff |caf\xe9|\xe9]"
