"""Functions of user-space ELF binaries: what uprobes attach to. Pure (reads files, no syscalls beyond
that), shared by the compiler (validating and expanding uprobe targets) and the runtime (attaching).

    path = find_binary("libc")                    # '/lib/x86_64-linux-gnu/libc.so.6'
    vaddr, size = function_symbols(path)["getpid"]
    offset = file_offset(path, vaddr)             # what the uprobe PMU takes as config2
    uprobe_offset("/usr/bin/bash", "readline", 4) # the same in one call, checked against the size
    uprobe_offset("/usr/bin/bash", "0x4a6f30")    # an address: checked to be inside a function
    matching_functions(path, "ns::add*")          # one name per address: aliases probe once
    list_uprobes("bash:read*")                    # ['uprobe:/usr/bin/bash:read_builtin', ...]

A binary is an absolute path (taken as it is), a program on PATH, or a library name ("libc",
"libc.so.6") found through `ldconfig -p` or the usual library directories. Symbols are the defined
STT_FUNC and STT_GNU_IFUNC entries of .symtab and .dynsym, and of the .symtab of the ELF that
MiniDebugInfo (`.gnu_debugdata`, xz) holds in the binary itself, memoized per (path, mtime). C++ names
also answer demangled ('ns::add(int, int)'), through binutils' c++filt where it is installed:
Python has no demangler of its own, and pybpf depends on none; without c++filt, C++ functions
answer to their mangled names only.
"""

from __future__ import annotations

import fnmatch
import os

from pybpf.errors import PybpfError

LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")

_FUNC_TYPES = ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS")   # pyelftools names type 10 STT_LOOS

_symbols_cache: dict[tuple[str, int], dict[str, tuple[int, int]]] = {}
_segments_cache: dict[tuple[str, int], list[tuple[int, int, int, bool]]] = {}
PF_X = 1                            # an executable segment (p_flags)
_ldconfig_cache: list[tuple[str, str]] | None = None


class SymbolError(PybpfError):
    """A binary or function that cannot be found: the message is for the user, as it is."""


class SymbolNotFound(SymbolError):
    """The binary, or the function in it, is not on this system (a probe the missing_probes
    setting may leave out), rather than a target that cannot be read or is wrongly written."""


def _ldconfig_entries() -> list[tuple[str, str]]:
    """(soname, path) pairs from `ldconfig -p`, x86-64 ones first; empty when ldconfig is missing."""
    global _ldconfig_cache
    if _ldconfig_cache is None:
        import shutil        # here, not at the top: the runtime imports this module on every start
        import subprocess

        entries: list[tuple[str, str, bool]] = []
        exe = shutil.which("ldconfig") or next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig")
                                                if os.path.exists(p)), None)
        if exe:
            try:
                out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            for line in out.splitlines()[1:]:
                left, sep, path = line.partition(" => ")
                if sep:
                    soname, _, arch = left.strip().partition(" ")
                    entries.append((soname, path.strip(), "x86-64" in arch))
        _ldconfig_cache = [(s, p) for s, p, _ in sorted(entries, key=lambda e: not e[2])]
    return _ldconfig_cache


def _library_matches(name: str, filename: str) -> bool:
    """'libc' and 'libc.so' match 'libc.so.6'; 'libc.so.6' matches only itself."""
    return (filename == name or filename.startswith(name + ".so")
            or (".so" in name and filename.startswith(name + ".")))


def _is_elf(path: str) -> bool:
    """Not a linker script (libc.so is one) nor a dangling link."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_binary(name: str) -> str:
    """The file a uprobe target names: an absolute path as it is; else a program on PATH; else a library."""
    if not name:
        raise SymbolError("binary not found: (empty name)")
    if "/" in name:
        path = name if os.path.isabs(name) else os.path.abspath(name)
        if os.path.isfile(path):
            return path
        raise SymbolNotFound(f"binary not found: {name}")
    import shutil

    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    exact = [p for s, p in _ldconfig_entries() if s == name]
    loose = [p for s, p in _ldconfig_entries() if _library_matches(name, s)]
    for path in exact + loose:
        if _is_elf(path):
            return path
    for directory in LIB_DIRS:
        try:
            files = sorted(os.listdir(directory))
        except OSError:
            continue
        for filename in ([name] if name in files else []) + [f for f in files if _library_matches(name, f)]:
            path = os.path.join(directory, filename)
            if _is_elf(path):
                return path
    raise SymbolNotFound(f"binary not found: {name}")


def _key(path: str) -> tuple[str, int]:
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        raise SymbolNotFound(f"binary not found: {path}") from None


def _open_elf(path: str):
    """(file, ELFFile). pyelftools is imported here, as in backend/objspec.py: start-up never pays for it."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        f = open(path, "rb")
    except OSError as e:
        raise SymbolError(f"cannot read {path}: {e.strerror}") from None
    try:
        return f, ELFFile(f)
    except ELFError:
        f.close()
        raise SymbolError(f"not an ELF binary: {path}") from None


def demangle(names: list[str]) -> dict[str, str]:
    """{mangled: demangled} of the Itanium-mangled names among `names` (`_Z...`), by one run of
    c++filt; empty where it is not installed or fails."""
    import shutil
    import subprocess

    mangled = [n for n in names if n.startswith("_Z") and "@" not in n]
    exe = shutil.which("c++filt") if mangled else None
    if not exe:
        return {}
    try:
        out = subprocess.run([exe], input="\n".join(mangled), capture_output=True, text=True,
                             timeout=60).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if len(out) != len(mangled):
        return {}
    return {m: d for m, d in zip(mangled, out) if d != m}


_ELF64_SYM = "<IBBHQQ"             # st_name, st_info, st_other, st_shndx, st_value, st_size
_FUNC_TYPE_NUMBERS = (2, 10)        # STT_FUNC, STT_GNU_IFUNC


def _defined_functions(elf, section):
    """(name, vaddr, size, global) of the defined functions of a symbol table. A 64-bit
    little-endian table is unpacked with struct: pyelftools parses each symbol through construct
    (~150 us each: seconds for one large library when a profile symbolizes many processes)."""
    if elf.elfclass != 64 or not elf.little_endian:
        for sym in section.iter_symbols():
            if (sym["st_info"]["type"] in _FUNC_TYPES and sym["st_shndx"] != "SHN_UNDEF"
                    and sym["st_value"] and sym.name):
                yield sym.name, sym["st_value"], sym["st_size"], sym["st_info"]["bind"] != "STB_LOCAL"
        return
    import struct

    strings = elf.get_section(section["sh_link"]).data()
    data = section.data()
    for name_at, info, _, shndx, value, size in struct.iter_unpack(
            _ELF64_SYM, data[:len(data) - len(data) % 24]):
        if (info & 0xF) not in _FUNC_TYPE_NUMBERS or not shndx or not value or not name_at:
            continue
        end = strings.find(b"\0", name_at)
        name = strings[name_at:end if end >= 0 else len(strings)].decode("utf-8", "replace")
        if name:
            yield name, value, size, info >> 4 != 0             # bind 0: STB_LOCAL


# MiniDebugInfo: the decompressed ELF is refused past this size, and the decoder's memory is
# bounded as well (a hostile or corrupt section cannot make pybpf allocate without end).
MAX_DEBUGDATA_BYTES = 64 << 20
MAX_DEBUGDATA_DECODER_MEMORY = 256 << 20


def _debugdata_elf(elf):
    """The ELF a `.gnu_debugdata` section holds (MiniDebugInfo: Fedora's and RHEL's stripped
    binaries keep the symbols of their local functions there, xz-compressed), or None when
    there is none or it is corrupt or too large."""
    import io
    import lzma

    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    section = elf.get_section_by_name(".gnu_debugdata")
    if section is None or section["sh_type"] == "SHT_NOBITS":
        return None
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=MAX_DEBUGDATA_DECODER_MEMORY)
    try:
        plain = decoder.decompress(section.data(), max_length=MAX_DEBUGDATA_BYTES + 1)
    except lzma.LZMAError:
        return None
    if len(plain) > MAX_DEBUGDATA_BYTES or not decoder.eof:
        return None
    try:
        return ELFFile(io.BytesIO(plain))
    except ELFError:
        return None


def _symbol_tables(elf):
    """(elf, section) of the symbol tables to read: .symtab, .dynsym, then the .symtab of the
    MiniDebugInfo, when the binary has one."""
    for candidate in (elf, _debugdata_elf(elf)):
        if candidate is None:
            continue
        for section_name in (".symtab", ".dynsym"):
            section = candidate.get_section_by_name(section_name)
            if section is not None and hasattr(section, "iter_symbols") and \
                    section["sh_type"] != "SHT_NOBITS":
                yield candidate, section


def function_symbols(path: str) -> dict[str, tuple[int, int]]:
    """{name: (vaddr, size)} of the functions `path` defines (.symtab, .dynsym, then the symbols
    of its MiniDebugInfo). A versioned name ('memcpy@GLIBC_2.2.5') also answers to its bare name
    when nothing else has it; a global symbol wins over a local one of the same name; a C++
    name also to its demangled form."""
    from elftools.common.exceptions import ELFError
    key = _key(path)
    cached = _symbols_cache.get(key)
    if cached is not None:
        return cached
    f, elf = _open_elf(path)
    found: dict[str, tuple[int, int, bool]] = {}
    try:
        for table_elf, section in _symbol_tables(elf):
            for sym_name, value, size, is_global in _defined_functions(table_elf, section):
                entry = (value, size, is_global)
                for name in (sym_name, sym_name.split("@", 1)[0]):
                    old = found.get(name)
                    if old is None or (is_global and not old[2]):
                        found[name] = entry
    except ELFError as e:
        raise SymbolError(f"cannot read the symbols of {path}: {e}") from None
    finally:
        f.close()
    result = {name: (vaddr, size) for name, (vaddr, size, _) in found.items()}
    for mangled, demangled in demangle(list(result)).items():
        result.setdefault(demangled, result[mangled])
    _symbols_cache[key] = result
    return result


def defined_symbol(path: str, name: str) -> tuple[int, int]:
    """(virtual address, size) of any defined symbol (a global variable as well as a function)."""
    from elftools.common.exceptions import ELFError
    f, elf = _open_elf(path)
    try:
        for section_name in (".symtab", ".dynsym"):
            section = elf.get_section_by_name(section_name)
            if section is None or not hasattr(section, "get_symbol_by_name"):
                continue
            for sym in section.get_symbol_by_name(name) or ():
                if sym["st_shndx"] != "SHN_UNDEF":
                    return sym["st_value"], sym["st_size"]
    except ELFError as e:
        raise SymbolError(f"cannot read the symbols of {path}: {e}") from None
    finally:
        f.close()
    raise SymbolNotFound(f"no symbol '{name}' in {path}")


def symbol_address(path: str, name: str) -> int:
    return defined_symbol(path, name)[0]


ET_DYN = 3                          # e_type of a PIE or a shared object


def position_independent(path: str) -> bool:
    """Whether the binary loads at an address chosen at run time (e_type ET_DYN: a PIE or a
    shared object), so its symbols' addresses move by a load bias."""
    try:
        with open(path, "rb") as f:
            header = f.read(18)
    except OSError as e:
        raise SymbolError(f"cannot read {path}: {e.strerror}") from None
    return len(header) == 18 and int.from_bytes(header[16:18], "little") == ET_DYN


def process_exists(pid: int) -> bool:
    return pid > 0 and os.path.isdir(f"/proc/{pid}")


def mapped_files(pid: int) -> list[str]:
    """The files process `pid` maps (its program and shared libraries), in map order, each once."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise SymbolError(f"no process with pid {pid}") from None
    except OSError as e:
        raise SymbolError(f"cannot read the mappings of process {pid}: {e.strerror}") from None
    files: dict[str, None] = {}
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/") and not fields[5].endswith(" (deleted)"):
            files[fields[5]] = None
    return list(files)


def find_mapped_binary(pid: int, name: str) -> str:
    """The file of process `pid` that `name` names: a path it maps (through links), or the
    basename / library name ('libc') of one."""
    files = mapped_files(pid)
    if "/" in name:
        wanted = os.path.realpath(name)
        for path in files:
            if os.path.realpath(path) == wanted:
                return path
    else:
        for path in files:
            base = os.path.basename(path)
            if base == name or _library_matches(name, base):
                return path
    raise SymbolNotFound(f"process {pid} maps no file {name}")


def _load_segments(path: str) -> list[tuple[int, int, int, bool]]:
    """(vaddr, memsz, file offset, executable) of each PT_LOAD segment."""
    key = _key(path)
    cached = _segments_cache.get(key)
    if cached is None:
        f, elf = _open_elf(path)
        try:
            cached = [(seg["p_vaddr"], seg["p_memsz"], seg["p_offset"], bool(seg["p_flags"] & PF_X))
                      for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        finally:
            f.close()
        _segments_cache[key] = cached
    return cached


def file_offset(path: str, vaddr: int) -> int:
    """The file offset of virtual address `vaddr`, through the PT_LOAD segment that contains it."""
    for p_vaddr, p_memsz, p_offset, _ in _load_segments(path):
        if p_vaddr <= vaddr < p_vaddr + p_memsz:
            return vaddr - p_vaddr + p_offset
    raise SymbolError(f"address {vaddr:#x} is in no loadable segment of {path}")


def vaddr_of_offset(path: str, offset: int) -> int:
    """The virtual address file offset `offset` loads at (file_offset's inverse)."""
    for p_vaddr, p_memsz, p_offset, _ in _load_segments(path):
        if p_offset <= offset < p_offset + p_memsz:
            return offset - p_offset + p_vaddr
    raise SymbolError(f"file offset {offset:#x} is in no loadable segment of {path}")


def _preferred(name: str) -> tuple:
    """Which of several names of one address a probe is called by: a plain or demangled name
    before `__alias`, `_Z...` and `name@VERSION`."""
    return name.startswith("_"), "@" in name, name


def functions_by_address(path: str) -> dict[int, tuple[str, int]]:
    """{vaddr: (name, size)} of the functions of `path`, each by its preferred name (a plain or
    demangled one: what a stack frame is named)."""
    found: dict[int, tuple[str, int]] = {}
    for name, (vaddr, size) in function_symbols(path).items():
        old = found.get(vaddr)
        if old is None or _preferred(name) < _preferred(old[0]):
            found[vaddr] = (name, size)
    return found


def matching_functions(path: str, pattern: str) -> list[str]:
    """The functions whose name matches shell pattern `pattern`, one name per address (libc's
    getpid is also __getpid: a probe on both would fire twice), sorted."""
    by_address: dict[int, str] = {}
    for name, (vaddr, _) in function_symbols(path).items():
        if fnmatch.fnmatchcase(name, pattern):
            old = by_address.get(vaddr)
            if old is None or _preferred(name) < _preferred(old):
                by_address[vaddr] = name
    return sorted(by_address.values())


def function_containing(path: str, vaddr: int) -> tuple[str, int, int] | None:
    """(name, start, size) of the function whose bytes hold `vaddr`, or None."""
    best = None
    for name, (start, size) in function_symbols(path).items():
        if start <= vaddr < start + max(size, 1) and (best is None or _preferred(name) < _preferred(best[0])):
            best = (name, start, size)
    return best


def parse_address(text: str) -> int | None:
    """An address probe's target ('0x401136', '4198710'), or None for a name."""
    try:
        return int(text, 0)
    except ValueError:
        return None


def _executable(path: str, vaddr: int) -> bool:
    return any(p_vaddr <= vaddr < p_vaddr + p_memsz and executable
               for p_vaddr, p_memsz, _, executable in _load_segments(path))


def uprobe_offset(path: str, func: str, offset: int = 0) -> int:
    """The file offset to probe for FUNC+OFFSET in `path`, checked to stay inside the function.
    FUNC may also be a virtual address ('0x401136'), which must be inside a function of the
    symbol tables, or, in a binary with no function symbols (stripped), in an executable
    segment."""
    address = parse_address(func)
    symbols = function_symbols(path)
    if address is not None:
        if symbols and function_containing(path, address + offset) is None:
            raise SymbolError(f"address {address + offset:#x} is not inside any function of {path}")
        if not symbols and not _executable(path, address + offset):
            raise SymbolError(f"address {address + offset:#x} is not in the code of {path}")
        return file_offset(path, address + offset)
    if func not in symbols:
        why = " (it has no symbol table: stripped?)" if not symbols else ""
        raise SymbolNotFound(f"no function '{func}' in {path}{why}")
    vaddr, size = symbols[func]
    if offset < 0 or (size and offset >= size):
        raise SymbolError(f"offset {offset} is outside function '{func}' in {path} ({size} bytes)")
    return file_offset(path, vaddr + offset)


def parse_uprobe_target(target: str) -> tuple[str, str, int]:
    """'PATH:FUNC+OFFSET' -> (PATH, FUNC, OFFSET); OFFSET is decimal or 0x hex, 0 when absent.
    PATH ends at the first colon, so FUNC may be a C++ name ('ns::add(int, int)'), and a `+`
    followed by no word is part of it ('operator+', 'operator+=')."""
    path, sep, func = target.partition(":")
    if not sep or not path or not func:
        raise SymbolError(f"a uprobe target is BINARY:FUNCTION, got {target!r}")
    name, plus, off = func.rpartition("+")
    if not plus or not name:
        return path, func, 0
    try:
        return path, name, int(off, 0)
    except ValueError:
        if off[:1].isalnum():
            raise SymbolError(f"bad uprobe offset in {target!r}: {off!r}") from None
        return path, func, 0


def list_uprobes(target_pattern: str, provider: str = "uprobe") -> list[str]:
    """Probe names 'PROVIDER:PATH:FUNC' for BINARY:PATTERN (a shell pattern on function names; the
    binary resolved by find_binary, so 'bash:read*' lists /usr/bin/bash's). Sorted."""
    binary, sep, pattern = target_pattern.partition(":")
    if not sep:
        binary, pattern = target_pattern, "*"
    path = find_binary(binary)
    return [f"{provider}:{path}:{n}" for n in matching_functions(path, pattern or "*")]
