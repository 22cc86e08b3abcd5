"""Facts of this machine that a compiled program has baked in, checked again before the compile
cache reuses it.

    fact = observe("inode", "/sys/fs/cgroup/user.slice")   # ("inode", path, "12345")
    still_true([fact])                                     # False once the cgroup is recreated

The cache key covers the source, the options, pybpf's code and the kernel; but some values come
from files that change under the same kernel: cgroupid("/path") compiles in the cgroup's inode,
kaddr("sym") an address that KASLR moves at each boot, a uprobe wildcard the functions a binary
had when it compiled. The compiler records each such value as a fact; a cached program whose facts
no longer hold is compiled afresh.
"""

from __future__ import annotations

import os

Fact = tuple[str, str, str]          # (kind, subject, value observed when compiling)

BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _inode(path: str) -> str:
    return str(os.stat(path).st_ino)


def _file(path: str) -> str:
    """A binary as a uprobe resolves it: rebuilt or replaced, one of these changes."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _boot(_: str) -> str:
    with open(BOOT_ID) as f:
        return f.read().strip()


READERS = {"inode": _inode, "file": _file, "boot": _boot}


def observe(kind: str, subject: str = "") -> Fact:
    """The fact as it is now; raises OSError if its subject cannot be read."""
    return (kind, subject, READERS[kind](subject))


def still_true(facts) -> bool:
    for kind, subject, value in facts:
        try:
            if READERS[kind](subject) != value:
                return False
        except (OSError, KeyError):
            return False
    return True
