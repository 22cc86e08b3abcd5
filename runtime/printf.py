"""C printf over the language's values, as bpftrace prints them.

    format_printf("%5d|%-8s|%x\\n", (42, "hi", 255))      # '   42|hi      |ff\\n'

Integers are 64-bit values: `%d` reads them signed, `%u %x %X %o` as their 64-bit two's complement, and
the length modifiers `h`/`hh` narrow them to 16/8 bits as C would (`l`/`ll` change nothing). bpftrace 0.17
passed 64-bit values to the C library under the user's own format, so `%d` of 2**32 + 5 printed 5 and
`%x` of -1 printed ffffffff; current bpftrace (and pybpf) print 4294967301 and ffffffffffffffff.
The format is parsed by pybpf.printf_format, which the type checker uses too.
"""

from __future__ import annotations

from pybpf.printf_format import BUFFER_CONVERSIONS, Conversion, split_format
from pybpf.runtime.values import text_of

_LENGTH_BITS = {None: 64, "l": 64, "ll": 64, "h": 16, "hh": 8}


def format_printf(fmt: str, args: tuple) -> str:
    out, next_arg = [], iter(args)
    for piece in split_format(fmt):
        out.append(piece if isinstance(piece, str) else _convert(piece, next(next_arg)))
    return "".join(out)


def _convert(conv: Conversion, value) -> str:
    char = conv.char
    if char in BUFFER_CONVERSIONS:
        if char == "r" or not hasattr(value, "raw"):
            return _pad(conv, str(value))
        return _pad(conv, value.hex_escaped() if char == "rx" else value.hex_spaced())
    if char == "s":
        text = text_of(value)
        if text.isascii():
            return _pad(conv, text if conv.precision is None else text[:conv.precision])
        # Strings are byte arrays: C counts width and precision in bytes, not characters, and a
        # precision may cut a character: its bytes go out as they are (surrogateescape).
        raw = text.encode("utf-8", "surrogateescape")
        if conv.precision is not None:
            raw = raw[:conv.precision]
        if conv.width > len(raw):
            fill = b" " * (conv.width - len(raw))
            raw = raw + fill if "-" in conv.flags else fill + raw
        return raw.decode("utf-8", "surrogateescape")
    if char == "c":
        return _pad(conv, bytes([value & 0xFF]).decode("utf-8", "surrogateescape"))
    if char == "p":
        # glibc prints a null pointer as "(nil)", any other as %#lx.
        value &= (1 << 64) - 1
        return _pad(conv, "(nil)") if value == 0 else _integer(conv, "p", "#", value)
    return _integer(conv, char, conv.flags, value)


def _integer(conv: Conversion, char: str, flags: str, value: int) -> str:
    bits = 64 if char == "p" else _LENGTH_BITS[conv.length]    # a pointer is never narrowed
    value &= (1 << bits) - 1
    sign = prefix = ""
    if char in "di":
        if value >> (bits - 1):
            value -= 1 << bits
        sign = "-" if value < 0 else "+" if "+" in flags else " " if " " in flags else ""
        digits = str(abs(value))
    else:
        digits = format(value, "o" if char == "o" else "x" if char in "xp" else "X" if char == "X" else "d")
    if conv.precision is not None:
        digits = digits.zfill(conv.precision) if conv.precision or value else ""
    if "#" in flags:
        if char == "o" and not digits.startswith("0"):
            digits = "0" + digits
        elif char in "xXp" and value:
            prefix = "0X" if char == "X" else "0x"
    body_len = len(sign) + len(prefix) + len(digits)
    if conv.width > body_len and "0" in flags and "-" not in flags and conv.precision is None:
        digits = "0" * (conv.width - body_len) + digits
    return _pad(conv, sign + prefix + digits)


def _pad(conv: Conversion, text: str) -> str:
    if conv.width <= len(text):
        return text
    return text.ljust(conv.width) if "-" in conv.flags else text.rjust(conv.width)
