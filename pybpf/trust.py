"""Whether a file or folder could have been written by another user: pybpf runs as root and
reads what it trusts (its cache, included headers) as if root had written it (docs/security.md).

    distrust(os.fstat(fd), path)       # '' when trusted, else why not
    check_folders_above(folder)        # raises Untrusted when a folder on the way is not ours
    trusted_file(path)                 # its resolved path, or raises Untrusted (or OSError)

A leaf module: pybpf.diskcache and pybpf.include build on it.
"""

from __future__ import annotations

import os
import stat


class Untrusted(Exception):
    """A folder or file another user could have written (the message says which, why)."""


def distrust(st: os.stat_result, path: str) -> str:
    """Why a folder or file with this lstat/fstat result is not trusted ('' if it is): a symlink,
    owned by someone other than the effective uid or root, or writable by its group or others."""
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if st.st_uid not in (os.geteuid(), 0):
        return f"{path} is owned by uid {st.st_uid}, not by uid {os.geteuid()} or root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):o})"
    return ""


def check_folders_above(folder: str, hint: str = "") -> None:
    """Every existing folder from / down to `folder` (the spelt path and the resolved one) is
    owned by us or root, and writable by others only if sticky: no one else can rename what is
    in it away. `hint` follows a wrong owner's message."""
    euid = os.geteuid()
    for path in dict.fromkeys((folder, os.path.realpath(folder))):
        prefix = "/"
        for part in [""] + path.strip("/").split("/"):
            prefix = os.path.join(prefix, part)
            try:
                st = os.lstat(prefix)
            except FileNotFoundError:
                break
            if st.st_uid not in (euid, 0):
                raise Untrusted(f"{prefix} is owned by uid {st.st_uid}, not by uid {euid} or root{hint}")
            if (stat.S_ISDIR(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
                    and not st.st_mode & stat.S_ISVTX):
                raise Untrusted(f"{prefix} is writable by its group or by others and not sticky")


def trusted_file(path: str) -> str:
    """The resolved path of a regular file that no other user could have written or swapped:
    neither it nor a folder above it. Raises Untrusted, or OSError when it cannot be looked at."""
    real = os.path.realpath(path)
    check_folders_above(os.path.dirname(real))
    st = os.lstat(real)
    reason = distrust(st, real) or ("" if stat.S_ISREG(st.st_mode) else f"{real} is not a file")
    if reason:
        raise Untrusted(reason)
    return real
