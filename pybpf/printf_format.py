"""printf format strings parsed: what the type checker checks arguments against and what the run side
formats with (pybpf.runtime.printf). A leaf both sides import.

    parse_printf("%d %-5s")[1]           # Conversion(char='s', start=3, end=7, flags='-', width=5, ...)
    split_format("pid %d\\n")             # ('pid ', Conversion(char='d', ...), '\\n')

Escapes in the format are decoded by the compiler before it gets here.
"""

from __future__ import annotations

from functools import lru_cache

from pybpf.errors import PybpfError
from pybpf.records import record

INT_CONVERSIONS = frozenset("diuxXocp")
STRING_CONVERSIONS = frozenset("s")
# bpftrace's conversions of buf() values: %r as printed (\xNN for unprintable bytes), %rx every
# byte as \xNN, %rh every byte as two hex digits with spaces between.
BUFFER_CONVERSIONS = frozenset(("r", "rx", "rh"))

# A conversion's flags and length modifiers (the longest first).
_FLAGS = frozenset("-+ #0")
_LENGTHS = ("hh", "h", "ll", "l")

# C's printf takes a width or precision as an int and fails past INT_MAX; pybpf builds each field in
# memory at every event, so it stops far lower, at the compile.
MAX_FIELD_WIDTH = 65535


class PrintfFormatError(PybpfError, ValueError):
    """A malformed format string; offset is the index in the format where the bad conversion starts."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


@record(frozen=True)
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
    return [piece for piece in split_format(fmt) if isinstance(piece, Conversion)]


def _spec_at(fmt: str, pos: int) -> tuple[str, str, str | None, str | None, str, int]:
    """The conversion at fmt[pos] ('%'): flags, width, precision (None: no '.'), length modifier,
    conversion character ('' at the end of the format) and where it ends; what the pattern
    `%([-+ #0]*)(\\d*)(?:\\.(\\d*))?(hh|h|ll|l)?(.?)` (DOTALL) matches, read by hand: the run
    side formats with it and a cache hit imports no re (tests/pybpf/test_printf_format.py)."""
    i = pos + 1
    while i < len(fmt) and fmt[i] in _FLAGS:
        i += 1
    flags, start = fmt[pos + 1:i], i
    while i < len(fmt) and fmt[i].isdecimal():
        i += 1
    width, precision = fmt[start:i], None
    if fmt.startswith(".", i):
        start = i = i + 1
        while i < len(fmt) and fmt[i].isdecimal():
            i += 1
        precision = fmt[start:i]
    length = next((m for m in _LENGTHS if fmt.startswith(m, i)), None)
    i += len(length or "")
    char = fmt[i:i + 1]
    return flags, width, precision, length, char, i + len(char)


@lru_cache(maxsize=1024)
def split_format(fmt: str) -> tuple[str | Conversion, ...]:
    """The format split into literal text and conversions, parsed once per distinct format."""
    pieces: list[str | Conversion] = []
    literal_start = pos = 0
    while (pos := fmt.find("%", pos)) >= 0:
        flags, width, precision, length, char, spec_end = _spec_at(fmt, pos)
        if not char:
            raise PrintfFormatError("incomplete conversion at the end of the format", pos)
        if char == "%":
            if spec_end - pos != 2:
                raise PrintfFormatError("'%%' takes no flags, width or precision", pos)
            pieces.append(fmt[literal_start:pos + 1])
        elif char in INT_CONVERSIONS or char in STRING_CONVERSIONS or char == "r":
            end = spec_end
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
        literal_start = pos = spec_end
    pieces.append(fmt[literal_start:])
    return tuple(p for p in pieces if p != "")
