"""C printf over the language's values, as bpftrace prints them.

    format_printf("%5d|%-8s|%x\\n", (42, "hi", 255))      # '   42|hi      |ff\\n'
    parse_printf("%d %-5s")[1]           # Conversion(char='s', start=3, end=7, flags='-', width=5, ...)

Integers are 64-bit values: `%d` reads them signed, `%u %x %X %o` as their 64-bit two's complement, and
the length modifiers `h`/`hh` narrow them to 16/8 bits as C would (`l`/`ll` change nothing). bpftrace 0.17
passed 64-bit values to the C library under the user's own format, so `%d` of 2**32 + 5 printed 5 and
`%x` of -1 printed ffffffff; current bpftrace (and pybpf) print 4294967301 and ffffffffffffffff.
Escapes in the format are decoded by the compiler before it gets here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pybpf.errors import PybpfError
from pybpf.runtime.values import text_of

INT_CONVERSIONS = frozenset("diuxXocp")
STRING_CONVERSIONS = frozenset("s")
# bpftrace's conversions of buf() values: %r as printed (\xNN for unprintable bytes), %rx every
# byte as \xNN, %rh every byte as two hex digits with spaces between.
BUFFER_CONVERSIONS = frozenset(("r", "rx", "rh"))

# Flags, width, precision, length modifier, conversion character (missing at the end of the format).
_SPEC = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d*))?(hh|h|ll|l)?(.?)", re.DOTALL)

_LENGTH_BITS = {None: 64, "l": 64, "ll": 64, "h": 16, "hh": 8}

# C's printf takes a width or precision as an int and fails past INT_MAX; pybpf builds each field in
# memory at every event, so it stops far lower, at the compile.
MAX_FIELD_WIDTH = 65535


class PrintfFormatError(PybpfError, ValueError):
    """A malformed format string; offset is the index in the format where the bad conversion starts."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Conversion:
    """One argument-consuming conversion (`%%` is not one)."""
    char: str
    start: int
    end: int
    flags: str = ""
    width: int = 0
    precision: int | None = None
    length: str | None = None

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end

    @property
    def expects(self) -> str:
        """'int', 'str' or 'buf': the kind of argument the type checker must supply."""
        if self.char in BUFFER_CONVERSIONS:
            return "buf"
        return "str" if self.char in STRING_CONVERSIONS else "int"


def parse_printf(fmt: str) -> list[Conversion]:
    return [piece for piece in _compile(fmt) if isinstance(piece, Conversion)]


def format_printf(fmt: str, args: tuple) -> str:
    pieces = _compile(fmt)
    out, next_arg = [], iter(args)
    for piece in pieces:
        out.append(piece if isinstance(piece, str) else _convert(piece, next(next_arg)))
    return "".join(out)


@lru_cache(maxsize=1024)
def _compile(fmt: str) -> tuple[str | Conversion, ...]:
    """The format split into literal text and conversions, parsed once per distinct format."""
    pieces: list[str | Conversion] = []
    literal_start = pos = 0
    while (pos := fmt.find("%", pos)) >= 0:
        m = _SPEC.match(fmt, pos)
        flags, width, precision, length, char = m.groups()
        if not char:
            raise PrintfFormatError("incomplete conversion at the end of the format", pos)
        if char == "%":
            if m.end() - pos != 2:
                raise PrintfFormatError("'%%' takes no flags, width or precision", pos)
            pieces.append(fmt[literal_start:pos + 1])
        elif char in INT_CONVERSIONS or char in STRING_CONVERSIONS or char == "r":
            end = m.end()
            if char == "r" and fmt[end:end + 1] in ("x", "h"):
                char, end = char + fmt[end], end + 1
            for what, digits in (("width", width), ("precision", precision)):
                if digits and (len(digits) > len(str(MAX_FIELD_WIDTH)) or int(digits) > MAX_FIELD_WIDTH):
                    raise PrintfFormatError(f"the {what} of {fmt[pos:end]!r} is too large "
                                            f"(at most {MAX_FIELD_WIDTH})", pos)
            pieces.append(fmt[literal_start:pos])
            pieces.append(Conversion(char, pos, end, flags, int(width or 0),
                                     None if precision is None else int(precision or 0), length))
            literal_start = pos = end
            continue
        elif char == "*":
            raise PrintfFormatError("'*' width or precision is not supported: write a number", pos)
        else:
            raise PrintfFormatError(f"unknown conversion '%{char}'", pos)
        literal_start = pos = m.end()
    pieces.append(fmt[literal_start:])
    return tuple(p for p in pieces if p != "")


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
