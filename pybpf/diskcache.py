"""Every on-disk cache of pybpf goes through here: one folder, trusted only as far as it is ours.

    data = diskcache.read("objects", key + ".marshal")   # None: absent, not trusted, or damaged
    diskcache.write("objects", key + ".marshal", data)   # atomic; errors only cost time
    diskcache.notes()                                    # why a cache was not used (-v prints them)

pybpf runs as root and loads what it reads here into the kernel, so a cache file that another user
could have written would let that user choose what root runs (docs/security.md). The root,
$XDG_CACHE_HOME/pybpf (else ~/.cache/pybpf), is created 0700. It, the folders in it and the
entries are used only when owned by the effective uid or root, not symlinks and not group- or
world-writable; every folder above the root must be owned by the effective uid or root too
(writable by others only when sticky, as /tmp). So root under `sudo -E`, whose HOME is still the
user's, uses no cache at all. Inside the root, folders are opened by descriptor with O_NOFOLLOW
and checked with fstat, so nothing can be swapped between the check and the use.

An entry is a header line `pybpf-cache sha256=HEX\\n` and its content; a read whose content does
not match removes the entry (the caller rebuilds it). A write goes to a fresh `.tmp-*` file in
the checked folder, then os.replace. The cache is bounded: after each write the least recently
used entries go until it fits (a hit refreshes an entry's mtime), and `.tmp-*` files older than a
minute (a writer killed mid-write) are removed.
"""

from __future__ import annotations

import errno
import os
import stat
import time

try:        # the interpreter's own SHA-256: hashlib loads OpenSSL first (~2.5 ms at every start)
    from _sha2 import sha256            # Python 3.12 on
except ImportError:
    try:
        from _sha256 import sha256      # Python 3.10, 3.11
    except ImportError:
        from hashlib import sha256      # an interpreter built without them

from pybpf.records import record
from pybpf.trust import Untrusted as _Untrusted
from pybpf.trust import check_folders_above
from pybpf.trust import distrust as _distrust

DEFAULT_MAX_BYTES = 256 << 20
MAX_SIZE_ENV = "PYBPF_CACHE_MAX_SIZE"
STALE_TMP_SECONDS = 60
TMP_PREFIX = ".tmp-"

_MAGIC = b"pybpf-cache sha256="
_HEADER_SIZE = len(_MAGIC) + 64 + 1
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Settings:
    def __init__(self, disabled: str = "", max_bytes: int | None = None):
        self.disabled = disabled            # why no cache is used at all (e.g. "--no-cache")
        self.max_bytes = max_bytes          # None: $PYBPF_CACHE_MAX_SIZE, else DEFAULT_MAX_BYTES
        self.notes: dict[str, None] = {}    # ordered set of one-line reasons


settings = Settings()


def root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "pybpf")


def enabled() -> bool:
    return not settings.disabled


def notes() -> list[str]:
    return list(settings.notes)


def _note(text: str) -> None:
    settings.notes[text] = None


def max_bytes() -> int:
    if settings.max_bytes is not None:
        return settings.max_bytes
    text = os.environ.get(MAX_SIZE_ENV)
    if text:
        try:
            return parse_size(text)
        except ValueError as e:
            _note(f"cache: {MAX_SIZE_ENV} ignored: {e}")
    return DEFAULT_MAX_BYTES


def parse_size(text: str) -> int:
    """'256M', '1G', '65536' -> bytes (K, M, G are powers of 1024)."""
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    try:
        size = int(text[:-1] if scale > 1 else text, 10) * scale
    except ValueError:
        raise ValueError(f"not a size in bytes: {text!r}") from None
    if size < 0:
        raise ValueError(f"not a size in bytes: {text!r}")
    return size


# -- trust ----------------------------------------------------------------------------------------

def _check_above(folder: str) -> None:
    """The folders above the cache root are ours or root's (made by us 0700 when missing)."""
    hint = " (sudo -E and su keep the user's HOME and XDG_CACHE_HOME)" if os.geteuid() == 0 else ""
    check_folders_above(folder, hint)


def _open_folder(name: str, parent_fd: int | None, create: bool) -> int:
    """A checked descriptor of folder `name` (in parent_fd, or an absolute path); FileNotFoundError
    when it is missing and not to be created."""
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
    st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    shown = name if parent_fd is None else f"the cache folder {name!r}"
    if reason := _distrust(st, shown) or ("" if stat.S_ISDIR(st.st_mode) else f"{shown} is not a folder"):
        raise _Untrusted(reason)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)     # O_NOFOLLOW: no symlink swapped in since
    if reason := _distrust(os.fstat(fd), shown):
        os.close(fd)
        raise _Untrusted(reason)
    return fd


def _open_root(create: bool) -> int:
    if settings.disabled:
        raise _Untrusted(settings.disabled)
    path = root()
    parent = os.path.dirname(path)
    _check_above(parent)            # before creating anything in a folder that may not be ours
    if create:
        os.makedirs(parent, 0o700, exist_ok=True)
    return _open_folder(path, None, create)


class _Folder:
    """`with _Folder(kind, create) as fd`: the checked folder root/kind, or _Untrusted/OSError."""

    def __init__(self, kind: str, create: bool):
        self.kind, self.create = kind, create
        self.fds: list[int] = []

    def __enter__(self) -> int:
        try:
            self.fds.append(_open_root(self.create))
            self.fds.append(_open_folder(self.kind, self.fds[0], self.create))
        except BaseException:
            self.__exit__()
            raise
        return self.fds[-1]

    def __exit__(self, *exc) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _refused(e: _Untrusted) -> None:
    if settings.disabled:
        return
    _note(f"cache: not used: {e} (cache folder {root()})")


# -- entries --------------------------------------------------------------------------------------

def read(kind: str, name: str) -> bytes | None:
    """The content of entry root/kind/name, or None when it is absent, not trusted or damaged (a
    damaged entry is removed)."""
    try:
        with _Folder(kind, create=False) as folder:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             dir_fd=folder)
            except OSError as e:
                if e.errno == errno.ELOOP:     # a symlink in the entry's place
                    raise _Untrusted(f"the cache entry {kind}/{name} is a symlink") from None
                raise
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(fd)
                if reason := _distrust(st, f"the cache entry {kind}/{name}") or (
                        "" if stat.S_ISREG(st.st_mode) else f"the cache entry {kind}/{name} is not a file"):
                    raise _Untrusted(reason)
                blob = f.read()
                content = _verified(blob)
                if content is None:
                    _note(f"cache: removed a damaged entry {kind}/{name} (its checksum does not match)")
                    os.unlink(name, dir_fd=folder)
                    return None
                try:
                    os.utime(fd)        # least recently used goes first
                except OSError:
                    pass
                return content
    except FileNotFoundError:
        return None
    except _Untrusted as e:
        _refused(e)
    except OSError as e:
        _note(f"cache: cannot read {kind}/{name}: {e.strerror or e}")
    return None


def _verified(blob: bytes) -> bytes | None:
    header, content = blob[:_HEADER_SIZE], blob[_HEADER_SIZE:]
    if not header.startswith(_MAGIC) or header[-1:] != b"\n":
        return None
    if sha256(content).hexdigest().encode() != header[len(_MAGIC):-1]:
        return None
    return content


def write(kind: str, name: str, content: bytes) -> None:
    """Store an entry whole or not at all, then keep the cache within its bound. A cache that
    cannot be written only costs time: the reason becomes a note."""
    header = _MAGIC + sha256(content).hexdigest().encode() + b"\n"
    try:
        with _Folder(kind, create=True) as folder:
            tmp = TMP_PREFIX + os.urandom(8).hex()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(header)
                    f.write(content)
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                os.unlink(tmp, dir_fd=folder)
                raise
        evict()
    except _Untrusted as e:
        _refused(e)
    except OSError as e:
        _note(f"cache: not written ({kind}/{name}): {e.strerror or e}"
              f"{f': {e.filename}' if e.filename else ''}")


def evict(limit: int | None = None) -> None:
    """Remove least recently used entries until the cache holds at most `limit` bytes (default
    max_bytes()), and `.tmp-*` files older than STALE_TMP_SECONDS."""
    limit = max_bytes() if limit is None else limit
    now = time.time()
    entries, total = [], 0
    try:
        fd = _open_root(create=False)
    except (OSError, _Untrusted):
        return
    try:
        for folder, _, names, folder_fd in os.fwalk(dir_fd=fd):
            for name in names:
                try:
                    st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
                    if name.startswith(TMP_PREFIX):
                        if now - st.st_mtime > STALE_TMP_SECONDS:
                            os.unlink(name, dir_fd=folder_fd)
                        continue
                except OSError:
                    continue
                entries.append((st.st_mtime_ns, st.st_size, os.path.join(folder, name)))
                total += st.st_size
        entries.sort()
        for _, size, path in entries:
            if total <= limit:
                break
            try:
                os.unlink(path, dir_fd=fd)
                total -= size
            except OSError:
                pass
    finally:
        os.close(fd)


@record(frozen=True)
class Cleared:
    """What clear() did: the compiled programs that were in the cache, and "PATH: reason" of what
    could not be removed."""
    objects: int
    failed: list[str]


def clear() -> Cleared:
    """Remove the whole cache folder (symlinks in it are removed, never followed)."""
    import shutil

    path = root()
    try:
        objects = sum(1 for n in os.listdir(os.path.join(path, "objects")) if not n.startswith(TMP_PREFIX))
    except OSError:
        objects = 0
    failed: list[str] = []

    def failure(function, failed_path, exc_info):
        e = exc_info[1]
        if not isinstance(e, FileNotFoundError):
            failed.append(f"{failed_path}: {getattr(e, 'strerror', None) or e}")

    try:
        os.lstat(path)
    except FileNotFoundError:
        return Cleared(objects, failed)
    except OSError as e:         # cannot even see it: that is not "removed"
        return Cleared(objects, [f"{path}: {e.strerror}"])
    shutil.rmtree(path, onerror=failure)
    return Cleared(objects, failed)
