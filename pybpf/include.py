"""The C headers a script's types come from besides BTF: `--include FILE` and the `#include`s
found in `-I DIR` folders, read before compiling (their text is part of the compile options, so
the compile cache's key covers it).

    headers = read_headers(source, include_dirs=("./inc",), include_files=("defs.h",))

An `#include` found in no -I folder is left to BTF (`#include <linux/sched.h>`: the kernel's
types are there). A header's own #includes are read first, as C pastes them where they stand;
each file once.

pybpf runs as root, and a header decides the layouts it reads kernel memory with: a header is read
only if no other user could have written it (pybpf.trust: the file and every folder above it
owned by the effective uid or root, not writable by others), and one that fails is an error.
"""

from __future__ import annotations

import os
import re
import stat

from pybpf.errors import PybpfError
from pybpf.records import record
from pybpf.trust import Untrusted, check_folders_above, distrust

MAX_HEADERS = 256
MAX_HEADER_BYTES = 4 << 20


@record(frozen=True)
class Header:
    """A header read for a script: its name as included (its path, for --include), its text."""
    name: str
    text: str


# A #define's head, `NAME` or `NAME(a, b)`, before its body (pybpf.cdefs reads headers' #defines
# with it, pybpf.preprocessor the script's, for #if conditions).
DEFINE_HEAD = re.compile(r"([A-Za-z_]\w*)(\([^)]*\))?")
_COMMENT = re.compile(r"/\*.*?\*/|//.*")


def without_comments(text: str) -> str:
    """C text (a #define's body, an #if's condition) without its comments, stripped."""
    return _COMMENT.sub("", text).strip()


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*[<"]([^>"\n]+)[>"]', re.M)


def includes_of(text: str) -> list[str]:
    """The names of a text's #include lines, in order ('linux/sched.h', 'x.h')."""
    return _INCLUDE.findall(text)


class IncludeError(PybpfError):
    """A header that cannot be read, or that is not trusted."""


def read_headers(source: str, include_dirs: tuple[str, ...] = (),
                 include_files: tuple[str, ...] = ()) -> tuple[Header, ...]:
    if not include_dirs and not include_files:
        return ()
    reader = _Reader(include_dirs)
    for path in include_files:
        reader.read(path, path, "--include")
    for name in includes_of(source):
        reader.include(name, None)
    return tuple(reader.headers)


class _Reader:
    def __init__(self, include_dirs: tuple[str, ...]):
        self.dirs = include_dirs
        self.headers: list[Header] = []
        self.seen: set[str] = set()

    def include(self, name: str, including_folder: str | None) -> None:
        folders = ((including_folder,) if including_folder else ()) + self.dirs
        for folder in folders:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                self.read(path, name, f"#include <{name}>")
                return

    def read(self, path: str, name: str, how: str) -> None:
        real = os.path.realpath(path)
        if real in self.seen:
            return
        if len(self.seen) >= MAX_HEADERS:
            raise IncludeError(f"{how}: more than {MAX_HEADERS} headers")
        self.seen.add(real)
        text = _read_trusted(real, path, how)
        for inner in includes_of(text):
            self.include(inner, os.path.dirname(real))
        self.headers.append(Header(name, text))


def _read_trusted(real: str, shown: str, how: str) -> str:
    try:
        check_folders_above(os.path.dirname(real))
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except Untrusted as e:
        raise IncludeError(_refusal(how, shown, str(e))) from None
    except OSError as e:
        raise IncludeError(f"{how}: cannot read {shown}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        reason = distrust(st, real) or ("" if stat.S_ISREG(st.st_mode) else f"{real} is not a file")
        if reason:
            raise IncludeError(_refusal(how, shown, reason))
        if st.st_size > MAX_HEADER_BYTES:
            raise IncludeError(f"{how}: {shown} is larger than {MAX_HEADER_BYTES >> 20} MiB")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_HEADER_BYTES + 1)
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape")


def _refusal(how: str, shown: str, reason: str) -> str:
    return (f"{how}: {shown} is not read: {reason} (pybpf runs as root and reads only headers no "
            f"other user can write)")
