"""Values the kernel records as bytes and user space prints as text (pybpf.types.FormattedType),
rendered the way bpftrace prints them.

    render(FormattedType("strerror"), (1).to_bytes(8, "little"))       # 'Operation not permitted'
    render(FormattedType("strftime", 8, "%H:%M:%S.%f"), ns_since_boot)   # '17:20:03.123456'

Each kind's layout is its compile-time side's (pybpf.builtins.formatted): one u64 for strftime
(nanoseconds since boot), strerror (errno), syscall_name (the syscall's number) and username
(uid); six bytes for macaddr; for inet (ntop) a u64 address family then the address's 4 or 16
bytes; for buf a u64 length then the bytes.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable

from pybpf import types as T
from pybpf.runtime import symbols

_STRFTIME_DIRECTIVE = r"%."        # compiled (and cached by re) at the first strftime printed


def _u64(raw: bytes) -> int:
    return int.from_bytes(raw[:8], "little")


def _strftime(fmt: str, raw: bytes) -> str:
    """strftime(3) of a CLOCK_BOOTTIME timestamp, in local time; `%f` is the microseconds, six
    digits (bpftrace's extension). The boot time is taken now, as bpftrace does when it prints."""
    import re       # here: a cache hit imports no re

    ns = _u64(raw) + time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    seconds, rest = divmod(ns, 1_000_000_000)
    micros = f"{rest // 1000:06d}"
    # %f replaced first, leaving %% alone, so time.strftime never sees it
    fmt = re.sub(_STRFTIME_DIRECTIVE, lambda m: micros if m[0] == "%f" else m[0], fmt)
    return time.strftime(fmt, time.localtime(seconds))


def _strerror(param: str, raw: bytes) -> str:
    return os.strerror(int.from_bytes(raw[:8], "little", signed=True))


UNKNOWN_SYSCALL = "Unknown syscall"        # bpftrace's text for a number its table lacks


def _syscall_name(param: str, raw: bytes) -> str:
    """The x86-64 syscall's name; the number read as an int32, as bpftrace casts it."""
    from pybpf.uapi.unistd_64 import SYSCALL_NAMES    # here: only syscall_name needs the table
    return SYSCALL_NAMES.get(int.from_bytes(raw[:4], "little", signed=True), UNKNOWN_SYSCALL)


def _username(param: str, raw: bytes) -> str:
    uid = _u64(raw)
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)           # no such user: the number, as `id -un` cannot name it


def _macaddr(param: str, raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw[:6])


def _inet(param: str, raw: bytes) -> str:
    import socket       # here, not at the top: every start would load it (~3 ms) for ntop() alone

    family = _u64(raw)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[8:12])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return f"(address family {family})"


class Buffer(str):
    """buf()'s bytes: the text bpftrace prints for them (printable ASCII as itself, other bytes as
    \\xNN), a str wherever text goes (print, map keys, JSON), keeping the bytes for printf's
    %rx and %rh."""
    raw: bytes

    def __new__(cls, raw: bytes) -> "Buffer":
        text = super().__new__(cls, "".join(chr(b) if 32 <= b <= 126 else f"\\x{b:02x}"
                                            for b in raw))
        text.raw = raw
        return text

    def hex_escaped(self) -> str:
        """%rx: every byte as \\xNN."""
        return "".join(f"\\x{b:02x}" for b in self.raw)

    def hex_spaced(self) -> str:
        """%rh: every byte as two hex digits, spaces between."""
        return " ".join(f"{b:02x}" for b in self.raw)


def _buf(param: str, raw: bytes) -> Buffer:
    length = min(_u64(raw), len(raw) - 8)
    return Buffer(raw[8:8 + length])


MOUNTS = "/proc/self/mounts"
_cgroup_paths: dict[tuple[int, str], str] = {}       # (id, hierarchy root) -> path, checked on use


def _cgroup_roots() -> list[tuple[str, str]]:
    """(name, mount point) of the mounted cgroup hierarchies: v2's named "unified", v1's by their
    mount point's last part, v2 first, then v1 by name (bpftrace's order)."""
    v2, v1 = [], []
    with open(MOUNTS) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] in ("cgroup", "cgroup2") and os.path.isdir(fields[1]):
                root = fields[1]
                (v2 if fields[2] == "cgroup2" else v1).append(
                    ("unified" if fields[2] == "cgroup2" else os.path.basename(root), root))
    return v2 + sorted(v1)


def _path_in_hierarchy(cgroup_id: int, root: str) -> str:
    """The directory under root whose inode is the id, as "/a/b" ("/" for root, "" if none)."""
    cached = _cgroup_paths.get((cgroup_id, root))
    if cached is not None:
        try:
            if os.stat(root if cached == "/" else root + cached).st_ino == cgroup_id:
                return cached
        except OSError:
            pass
    found = ""
    if os.stat(root).st_ino == cgroup_id:
        found = "/"
    else:
        for folder, subfolders, _ in os.walk(root):
            match = next((s for s in subfolders if os.stat(os.path.join(folder, s)).st_ino == cgroup_id),
                         None)
            if match is not None:
                found = os.path.join(folder, match)[len(root):]
                break
    if found:
        if len(_cgroup_paths) >= 1024:          # bounded: a long trace sees ever new cgroups
            _cgroup_paths.clear()
        _cgroup_paths[cgroup_id, root] = found
    return found


def _cgroup_path(hierarchies: str, raw: bytes) -> str:
    """bpftrace's cgroup_path text: `name:path` for each hierarchy matching the filter, comma
    separated, looked up when printed (a cgroup gone by then has an empty path)."""
    import fnmatch      # here, not at the top: only cgroup_path needs it
    cgroup_id = _u64(raw)
    parts = []
    for name, root in _cgroup_roots():
        if fnmatch.fnmatchcase(name, hierarchies):
            try:
                parts.append(f"{name}:{_path_in_hierarchy(cgroup_id, root)}")
            except OSError:
                parts.append(f"{name}:")
    return ",".join(parts)


def _pointer(param: str, raw: bytes) -> str:
    return hex(_u64(raw))          # a pointer member of a struct, as bpftrace prints it


def _function_or_address(name: str, addr: int) -> str:
    """A frame's function without its offset, as ksym/usym print; where no symbol holds it, the
    address as bpftrace 0.17 to 0.26 stream it (a void*: 0x-prefixed hex, but 0 for address 0)."""
    if name != symbols.UNKNOWN:
        return name.split("+", 1)[0]
    return f"{addr:#x}" if addr else "0"


def _ksym(param: str, raw: bytes) -> str:
    return _function_or_address(symbols.current().kernel.name(_u64(raw)), _u64(raw))


def _usym(param: str, raw: bytes) -> str:
    """The function of the process (pid in the second u64) holding the address."""
    addr = _u64(raw)
    return _function_or_address(symbols.current().users.resolve(_u64(raw[8:]), addr)[0], addr)


RENDERERS: dict[str, Callable[[str, bytes], str]] = {
    "pointer": _pointer,
    "ksym": _ksym,
    "usym": _usym,
    "strftime": _strftime,
    "strerror": _strerror,
    "syscall_name": _syscall_name,
    "username": _username,
    "macaddr": _macaddr,
    "inet": _inet,
    "buf": _buf,
    "cgroup_path": _cgroup_path,
}


def render(t: T.FormattedType, raw: bytes) -> str:
    return RENDERERS[t.kind](t.param, raw)
