"""The compile cache: a CompiledProgram stored under a key of everything that shaped it.

    compiled = compile_cached(source, filename, options)   # a hit imports neither Lark nor llvmlite

The key covers the source, the options (positional parameters, sizes), pybpf's own code (version
and the size and mtime of the modules that compile, subpackages such as uapi included, so an
edited checkout never reads stale objects) and the
running kernel (release, build string and BTF size: tracepoint layouts and ids come from it) and
the machine's possible CPUs (`ncpus` is compiled in; a reboot may change them).
Entries live in $XDG_CACHE_HOME/pybpf/objects (~/.cache/pybpf/objects); writes are atomic.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil

from pybpf import __version__
from pybpf.program import CompiledProgram


def cache_path(*parts: str) -> str:
    """Where pybpf keeps a cache: $XDG_CACHE_HOME/pybpf/PARTS (~/.cache/pybpf/PARTS). Every
    on-disk cache (compiled objects, parsed objects, the BTF index, the grammar) lives there."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf", *parts)


def write_atomically(path: str, data: bytes) -> None:
    """Write a cache file whole or not at all, so a reader never sees half of one. A cache that
    cannot be written only costs time: errors are swallowed."""
    import tempfile     # ~2 ms to import: only a cache miss pays it

    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def cache_dir() -> str:
    return cache_path("objects")


@functools.cache
def _code_identity() -> str:
    import pybpf
    import pybpf.backend
    import pybpf.grammar

    parts = [__version__]
    for module in (pybpf, pybpf.backend, pybpf.grammar):
        top = os.path.dirname(module.__file__)
        for folder, subfolders, names in os.walk(top):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(names):
                if name.endswith((".py", ".lark")):
                    st = os.stat(os.path.join(folder, name))
                    parts.append(f"{os.path.relpath(os.path.join(folder, name), top)}:"
                                 f"{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


@functools.cache
def _kernel_identity() -> str:
    u = os.uname()
    try:
        btf_size = os.stat("/sys/kernel/btf/vmlinux").st_size
    except OSError:
        btf_size = -1
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            cpus = f.read().strip()
    except OSError:
        cpus = ""
    return f"{u.release}|{u.version}|{u.machine}|{btf_size}|{cpus}"


def cache_key(source: str, options) -> str:
    h = hashlib.sha256()
    for part in (_code_identity(), _kernel_identity(), repr(options), source):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def load_cached(key: str) -> CompiledProgram | None:
    try:
        with open(os.path.join(cache_dir(), key + ".json")) as f:
            return CompiledProgram.from_json(f.read())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(key: str, compiled: CompiledProgram) -> None:
    write_atomically(os.path.join(cache_dir(), key + ".json"), compiled.to_json().encode())


def clear() -> int:
    """Remove every pybpf cache (compiled objects, parsed objects, the BTF index, the grammar's);
    returns how many compiled objects there were."""
    try:
        count = sum(1 for n in os.listdir(cache_dir()) if n.endswith(".json"))
    except OSError:
        count = 0
    shutil.rmtree(cache_path(), ignore_errors=True)
    return count


def compile_cached(source: str, filename: str = "stdin", options=None, times=None,
                   use_cache: bool = True) -> CompiledProgram:
    from pybpf.compiler import CompileOptions

    options = options or CompileOptions()
    if not use_cache:
        from pybpf.compiler import compile_source
        return compile_source(source, filename, options, times)
    key = cache_key(source, options)
    compiled = load_cached(key)
    if compiled is None:
        from pybpf.compiler import compile_source
        compiled = compile_source(source, filename, options, times)
        store(key, compiled)
    return compiled
