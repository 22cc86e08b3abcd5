"""tracefs: where tracepoints are listed and their record layouts described.

    fmt = read_format("syscalls", "sys_enter_openat")
    fmt.id                              # 782: the perf event config and the record's common_type
    fmt.field("filename")               # TracepointField('filename', 'const char *', offset=24, size=8, ...)

tracefs is mounted at /sys/kernel/tracing when it is missing (a fresh machine has it unmounted).
"""

from __future__ import annotations

import ctypes
import functools
import os
from pybpf.records import record

from pybpf.errors import PybpfError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class TracefsError(PybpfError):
    pass


@functools.cache
def root() -> str:
    for path in TRACEFS_PATHS:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    target = TRACEFS_PATHS[0]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"nodev", target.encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise TracefsError(f"tracefs is not mounted and mounting it at {target} failed: "
                           f"{os.strerror(err)}")
    return target


@record(frozen=True)
class TracepointField:
    name: str
    ctype: str           # the C type as the format file writes it, without the array suffix
    offset: int
    size: int
    signed: bool
    array_len: int | None = None    # `char comm[16]` -> 16
    data_loc: bool = False          # `__data_loc char[] name`: u32 (len << 16 | offset)

    @property
    def is_pointer(self) -> bool:
        return self.ctype.endswith("*")

    @property
    def is_string(self) -> bool:
        base = self.ctype.replace("const ", "").strip()
        return (self.data_loc and base.startswith("char")) or \
            (self.array_len is not None and base == "char")

    @property
    def is_common(self) -> bool:
        return self.name.startswith("common_")

    def declaration(self) -> str:
        if self.data_loc:
            return f"__data_loc {self.ctype}[] {self.name}"
        if self.array_len is not None:
            return f"{self.ctype} {self.name}[{self.array_len}]"
        sep = "" if self.ctype.endswith("*") else " "
        return f"{self.ctype}{sep}{self.name}"


@record(frozen=True)
class TracepointFormat:
    category: str
    name: str
    id: int
    fields: tuple[TracepointField, ...]

    def field(self, name: str) -> TracepointField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def args(self) -> tuple[TracepointField, ...]:
        return tuple(f for f in self.fields if not f.is_common)


# A syscall's arguments fill 8-byte slots of its tracepoint whatever their C type (`int fd;
# size:8; signed:0`). The value is the declared type's, in the slot's low bytes: read as that type
# (as bpftrace 0.17 reads them, whose struct has the declared types), so openat's dfd is -100 and
# kill's pid -1, not 4294967196 and 4294967295.
_C_INTEGERS = {"int": (4, True), "unsigned int": (4, False), "unsigned": (4, False),
               "pid_t": (4, True), "uid_t": (4, False), "gid_t": (4, False),
               "clockid_t": (4, True), "timer_t": (4, True), "mqd_t": (4, True),
               "key_t": (4, True), "key_serial_t": (4, True), "rwf_t": (4, True),
               "qid_t": (4, False), "umode_t": (2, False), "short": (2, True),
               "unsigned short": (2, False)}


def _declared_integer(ctype: str, size: int, signed: bool) -> tuple[int, bool]:
    """(size, signed) of a field, its declared C integer type's when that is narrower."""
    declared = _C_INTEGERS.get(ctype.removeprefix("const ").strip())
    return declared if declared is not None and declared[0] < size else (size, signed)


@functools.cache
def _format_patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """A format's ID line, its field lines and a field's declaration, compiled at the first format
    parsed, not at import: attaching a tracepoint reads only its id, and a cache hit imports no re."""
    import re

    return (re.compile(r"^ID:\s*(\d+)", re.M),
            re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
                       r"\s*signed:(?P<signed>\d+);"),
            re.compile(r"^(?P<type>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(\[(?P<len>[^\]]*)\])?$"))


def parse_format(category: str, name: str, text: str) -> TracepointFormat:
    id_line, field_line, declaration = _format_patterns()
    id_match = id_line.search(text)
    if not id_match:
        raise TracefsError(f"no ID in the format of {category}:{name}")
    fields = []
    for m in field_line.finditer(text):
        decl = m["decl"].strip()
        data_loc = decl.startswith("__data_loc ")
        if data_loc:
            decl = decl[len("__data_loc "):].replace("[]", "")
        d = declaration.match(decl)
        if not d:
            continue
        array_len = None
        if d["len"] is not None and not data_loc:
            array_len = int(d["len"]) if d["len"].isdigit() else 0
        size, signed = int(m["size"]), m["signed"] == "1"
        if array_len is None and not data_loc:
            size, signed = _declared_integer(d["type"], size, signed)
        fields.append(TracepointField(d["name"], d["type"].strip(), int(m["offset"]), size, signed,
                                      array_len, data_loc))
    return TracepointFormat(category, name, int(id_match[1]), tuple(fields))


@functools.cache
def read_format(category: str, name: str) -> TracepointFormat:
    path = os.path.join(root(), "events", category, name, "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise TracefsError(f"tracepoint not found: {category}:{name}") from None
    except OSError as e:
        raise TracefsError(f"cannot read {path}: {e.strerror}") from None
    return parse_format(category, name, text)


def has_event(category: str, name: str) -> bool:
    """Whether the tracepoint has its folder and format file: one stat, where reading the format
    makes the kernel print it (pybpf.providers.tracepoint reads it only when `args` is read)."""
    return os.path.isfile(os.path.join(root(), "events", category, name, "format"))


@functools.cache
def list_tracepoints() -> tuple[tuple[str, str], ...]:
    """Every (category, name) the kernel offers, sorted."""
    try:
        with open(os.path.join(root(), "available_events")) as f:
            pairs = [tuple(line.strip().split(":", 1)) for line in f if ":" in line]
    except OSError:
        events = os.path.join(root(), "events")
        pairs = [(c, n) for c in os.listdir(events) if os.path.isdir(os.path.join(events, c))
                 for n in os.listdir(os.path.join(events, c))
                 if os.path.isdir(os.path.join(events, c, n))]
    return tuple(sorted(set(pairs)))
