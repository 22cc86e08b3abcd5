"""Source spans, the diagnostics collector, and their rendering in bpftrace's form.

    diags = Diagnostics(source, filename="stdin")
    diags.error("Unknown function: foo", span)
    raise diags.as_error()          # CompileError; str() is the rendering below

    stdin:1:9-14: ERROR: Unknown function: foo
    BEGIN { foo(); }
            ~~~~~

Columns are 1-based; the end column is exclusive, as bpftrace prints them.
"""

from __future__ import annotations

from pybpf.records import factory, record

from pybpf.errors import PybpfError


@record(frozen=True)
class Span:
    line: int
    column: int          # 1-based, first character
    end_line: int
    end_column: int      # 1-based, one past the last character

    @staticmethod
    def of_meta(meta) -> "Span":
        return Span(meta.line, meta.column, meta.end_line, meta.end_column)

    @staticmethod
    def of_token(token) -> "Span":
        return Span(token.line, token.column, token.end_line, token.end_column)

    def join(self, other: "Span") -> "Span":
        return Span(self.line, self.column, other.end_line, other.end_column)


NO_SPAN = Span(0, 0, 0, 0)

# The kernel's line info (struct bpf_line_info) keeps a column in 10 bits, and LLVM writes a wider
# one into the line's bits: locations are clamped to this column, and a statement past it is found
# by its line and the clamped column.
LINE_INFO_MAX_COLUMN = 0x3FF


@record(frozen=True)
class Diagnostic:
    message: str
    span: Span
    severity: str = "ERROR"
    hint: str | None = None


@record
class Diagnostics:
    source: str
    filename: str = "stdin"
    items: list[Diagnostic] = factory(list)

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(Diagnostic(message, span, "ERROR", hint))

    def warning(self, message: str, span: Span) -> None:
        self.items.append(Diagnostic(message, span, "WARNING"))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "ERROR" for d in self.items)

    def render(self) -> str:
        return "\n".join(render(d, self.source, self.filename) for d in self.items)

    def as_error(self) -> "CompileError":
        return CompileError(self)


def render(d: Diagnostic, source: str, filename: str) -> str:
    location, context = locate(d.span, source, filename)
    out = [f"{location}: {d.severity}: {d.message}", *context]
    if d.hint:
        out.append(f"HINT: {d.hint}")
    return "\n".join(out)


def locate(span: Span, source: str, filename: str) -> tuple[str, tuple[str, ...]]:
    """A span as bpftrace shows it: ('stdin:1:9-14', (the source line, its `~~~` marker)); a
    diagnostic's first line is the location, the severity and the message, then the context."""
    if span is NO_SPAN or span.line == 0:
        return filename, ()
    # Lines as the parser counts them: split at \n only (splitlines() also splits at \f, \x1c,
    # \x85, U+2028..., and would show another line than the one the span is on).
    lines = source.split("\n")
    line = lines[span.line - 1].removesuffix("\r") if span.line <= len(lines) else ""
    start = span.column
    end = span.end_column if span.end_line == span.line else len(line) + 1
    end = max(end, start + 1)
    # bpftrace prints tabs as four spaces, and lines the underline up with that
    width = len(line[:start - 1].replace("\t", "    "))
    return (f"{filename}:{span.line}:{start}-{end}",
            (line.replace("\t", "    "), " " * width + "~" * (end - start)))


class CompileError(PybpfError):
    """A program that cannot be compiled; carries its diagnostics, renders them as str()."""

    def __init__(self, diagnostics: Diagnostics):
        super().__init__(diagnostics.render())
        self.diagnostics = diagnostics

    def render(self) -> str:
        return str(self)        # the diagnostics carry their own 'ERROR:'

    @property
    def items(self) -> list[Diagnostic]:
        return self.diagnostics.items
