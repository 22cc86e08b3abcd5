"""The C headers a script's types come from besides BTF: `--include FILE` and the `#include`s
found in `-I DIR` folders, read before compiling (their text is part of the compile options, so
the compile cache's key covers it).

    conditionals = Conditionals(predefined())         # pybpf.preprocessor's: BPFTRACE_HAVE_BTF
    headers = read_headers(source, conditionals, include_dirs=("./inc",), include_files=("defs.h",))

An `#include` found in no -I folder is left to BTF (`#include <linux/sched.h>`: the kernel's
types are there). A header's own #includes are read first, as C pastes them where they stand;
each file once. Conditionals are evaluated as C's preprocessor reads the files, one after another
with the names defined so far (the caller's pybpf.preprocessor.Conditionals, which imports this
module for its #define reading): a branch not taken is blanked, and an #include in it is not read.

pybpf runs as root, and a header decides the layouts it reads kernel memory with: a header is read
only if no other user could have written it (pybpf.trust: the file and every folder above it
owned by the effective uid or root, not writable by others), and one that fails is an error.
"""

from __future__ import annotations

import os
import re
import stat

from pybpf.diagnostics import Diagnostics
from pybpf.errors import PybpfError
from pybpf.records import record
from pybpf.trust import Untrusted, check_folders_above, distrust

TYPE_CHECKING = False       # typing costs ~2 ms at every start; only type checkers read these
if TYPE_CHECKING:
    from pybpf.preprocessor import Conditionals

MAX_HEADERS = 256
MAX_HEADER_BYTES = 4 << 20


@record(frozen=True)
class Header:
    """A header read for a script: its name as included (its path, for --include), its text
    with the lines of the branches its conditionals did not take blanked."""
    name: str
    text: str


# A #define's head, `NAME` or `NAME(a, b)`, before its body (pybpf.cdefs reads headers' #defines
# with it, pybpf.preprocessor the script's, for #if conditions).
DEFINE_HEAD = re.compile(r"([A-Za-z_]\w*)(\([^)]*\))?")
_COMMENT = re.compile(r"/\*.*?\*/|//.*")


def without_comments(text: str) -> str:
    """C text (a #define's body, an #if's condition) without its comments, stripped."""
    return _COMMENT.sub("", text).strip()


INCLUDED_NAME = re.compile(r'[<"]([^>"\n]+)[>"]')         # after `#include`: <name> or "name"
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*' + INCLUDED_NAME.pattern, re.M)


def includes_of(text: str) -> list[str]:
    """The names of a text's #include lines, in order ('linux/sched.h', 'x.h')."""
    return _INCLUDE.findall(text)


class IncludeError(PybpfError):
    """A header that cannot be read, or that is not trusted."""


def read_headers(source: str, conditionals: Conditionals, include_dirs: tuple[str, ...] = (),
                 include_files: tuple[str, ...] = ()) -> tuple[Header, ...]:
    if not include_dirs and not include_files:
        return ()
    reader = _Reader(include_dirs, conditionals)
    for path in include_files:
        reader.read(path, path, "--include")
    # The script's own errors are reported when it is parsed; here it only says which #includes
    # are taken, and defines names for the headers below them.
    reader.conditionals.active_text(source, Diagnostics(source),
                                    on_include=lambda name: reader.include(name, None))
    return tuple(reader.headers)


class _Reader:
    def __init__(self, include_dirs: tuple[str, ...], conditionals: Conditionals):
        self.dirs = include_dirs
        self.conditionals = conditionals
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
        diags = Diagnostics(text, path)
        active = self.conditionals.active_text(
            text, diags, on_include=lambda inner: self.include(inner, os.path.dirname(real)))
        if active is None:
            raise diags.as_error()
        self.headers.append(Header(name, active))


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
