"""The compile cache: a CompiledProgram stored under a key of everything that shaped it.

    compiled = compile_cached(source, filename, options)   # a hit imports neither Lark nor llvmlite

The key covers the source, the options (positional parameters, sizes), the code (pybpf's version;
for an installed pybpf its dist-info RECORD, which each install rewrites; for an editable checkout
the size and mtime of every module of pybpf, its runtime and subpackages included, so an edited
checkout never reads stale objects; Lark's and llvmlite's folders), the running kernel (release,
build string and BTF size: tracepoint layouts and ids come from it), the machine's possible CPUs
(`ncpus` is compiled in; a reboot may change them) and the script's file name (errorf() prints it).
Values read from files that change under the same kernel (a cgroup's inode, a kernel address, a
binary's functions) are recorded as pybpf.facts with the program and checked again at each hit. Entries live in the trusted cache folder's
objects/ (pybpf.diskcache: checked owner and mode, checksummed, bounded).
"""

from __future__ import annotations

import functools
import marshal
import os
import sys

from pybpf import __version__, diskcache, facts
from pybpf.program import CompiledProgram

FOLDER = "objects"
SUFFIX = ".marshal"


@functools.cache
def _code_identity() -> str:
    """What shapes a compiled program, found without importing anything new: pybpf's own code (its
    install record, else every file of its packages, the runtime included: no guess at which
    modules shape a compiled program, it must match the code that loads and prints it), and the
    folders of Lark and llvmlite (an upgrade recreates them)."""
    parts = [__version__, _installed_identity() or _checkout_identity()]
    for package in ("lark", "llvmlite"):
        top = _package_folder(package)
        if top is not None:
            st = os.stat(top)
            parts.append(f"{top}:{st.st_ino}:{st.st_mtime_ns}")
    return "|".join(parts)


def _package_folder(name: str) -> str | None:
    """The folder `import name` would load a regular package from: the first on sys.path that has
    it (importlib.util.find_spec would import importlib.util, ~0.5 ms, at every start)."""
    for entry in sys.path:
        folder = os.path.join(entry or os.curdir, name)
        if os.path.isfile(os.path.join(folder, "__init__.py")):
            return os.path.abspath(folder)
    return None


def _installed_identity() -> str | None:
    """An installed pybpf (`pip install .`): its dist-info RECORD beside the package, which every
    install rewrites (one stat at each start instead of one per module). None for an editable
    checkout, whose package folder has no RECORD beside it: its files are edited in place."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    record = os.path.join(site, f"pybpf-{__version__}.dist-info", "RECORD")
    try:
        st = os.stat(record)
    except OSError:
        return None
    return f"{record}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _checkout_identity() -> str:
    """The size and mtime of every file of pybpf's packages (the runtime too: the compiler uses its
    printf parser and attach probes), so an edited checkout never reads stale objects."""
    from importlib.util import find_spec

    parts = []
    for package in ("pybpf", "pybpf.backend", "pybpf.grammar", "pybpf.runtime"):
        for top in find_spec(package).submodule_search_locations:
            for folder, subfolders, names in os.walk(top):
                subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
                for name in sorted(names):
                    if name.endswith((".py", ".lark")):
                        path = os.path.join(folder, name)
                        st = os.stat(path)
                        parts.append(f"{package}/{path[len(top) + 1:]}:{st.st_size}:{st.st_mtime_ns}")
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


def cache_key(source: str, options, filename: str = "stdin") -> str:
    """The filename is in the key: errorf() and the warnings carry it."""
    h = diskcache.sha256()
    for part in (_code_identity(), _kernel_identity(), repr(options), filename, source):
        h.update(part.encode("utf-8", "surrogateescape"))     # a script's non-UTF-8 bytes too
        h.update(b"\0")
    return h.hexdigest()


def load_cached(key: str) -> CompiledProgram | None:
    """The entry is CompiledProgram.to_data in marshal's format: read without importing anything
    (json costs ~1.5 ms at every start) and 3x faster. marshal only rebuilds the values it holds,
    runs no code, and reads only what pybpf.diskcache returns: an entry of our own trusted folder
    whose checksum matched, as the interpreter reads its own bytecode files with it."""
    data = diskcache.read(FOLDER, key + SUFFIX)
    if data is None:
        return None
    try:
        return CompiledProgram.from_data(marshal.loads(data))
    except (ValueError, KeyError, TypeError, IndexError, EOFError):   # another version's: compile afresh
        return None


def store(key: str, compiled: CompiledProgram) -> None:
    diskcache.write(FOLDER, key + SUFFIX, marshal.dumps(_plain(compiled.to_data())))


def _plain(value):
    """value with its ints and strs of subclasses (the IntEnum members a program holds: a perf
    event's PerfType, a map's BpfMapType) made plain, as JSON wrote them: marshal writes only the
    exact built-in types."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, int) and type(value) is not bool:
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def _cacheable(compiled: CompiledProgram) -> bool:
    """USDT points carry file offsets and argument places read from a binary, which may be
    rebuilt at the same path (and -p's process may be another by then): compiled afresh."""
    return not any(point.attach_kind == "usdt" for program in compiled.programs
                   for point in program.attach_points)


def compile_cached(source: str, filename: str = "stdin", options=None, times=None) -> CompiledProgram:
    """compile_source on a deep stack (pybpf.deepstack), through the cache unless it is off
    (diskcache.settings.disabled: --no-cache). A hit starts no thread."""
    from pybpf.compiler import CompileOptions, compile_source
    from pybpf.deepstack import on_deep_stack

    options = options or CompileOptions()
    if not diskcache.enabled():
        return on_deep_stack(compile_source, source, filename, options, times)
    key = cache_key(source, options, filename)
    compiled = load_cached(key)
    if compiled is not None and not facts.still_true(compiled.depends_on):
        compiled = None           # a cgroup recreated, a reboot, a binary rebuilt: compile afresh
    if compiled is None:
        compiled = on_deep_stack(compile_source, source, filename, options, times)
        if _cacheable(compiled):
            store(key, compiled)
    return compiled
