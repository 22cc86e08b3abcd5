"""Stacks and symbols at print time: the frames of a kstack/ustack id, named.

    tables = Symbols()                                       # one per session
    tables.stacks = StackTable(stacks_map_fd, maps.lookup, tables)   # for its stack-trace map
    tables.stacks.render(StackType(user=False), stack_id, pid)  # '\\n\\tdo_syscall_64+129\\n...'
    tables.kernel.name(0xffffffff81000000)                  # 'startup_64+0'

Kernel frames come from /proc/kallsyms (modules included), sorted once and searched by bisection.
User frames come from the ELF symbol tables (.symtab, .dynsym) of the files mapped in the process,
each at its load bias. A process's mappings are kept from the first time they are read
(`remember`), so a stack of a process that has exited since still resolves.

The tables belong to a session (Symbols), not to the process: kallsyms changes while the machine
runs (modules come and go, and every BPF program loaded adds its own symbol), and a file may be
rebuilt at the same path, so a table kept for the life of a library's process would go stale.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable

from pybpf import types as T
from pybpf.records import record
from pybpf.uapi.bpf import PERF_MAX_STACK_DEPTH

UNKNOWN = "[unknown]"
KALLSYMS = "/proc/kallsyms"
# Processes whose mappings are kept: bounds the memory of a long run over many short processes.
MAX_REMEMBERED_PROCESSES = 4096
# Files whose functions are kept: bounds a long run over many binaries the same way.
MAX_REMEMBERED_FILES = 1024


class SortedSymbols:
    """Addresses to names: the greatest symbol start at or below an address, by bisection.
    Entries are (start, name, tag): what a kind keeps beside the name (a kernel symbol's module,
    a file function's end)."""

    def __init__(self, entries: list[tuple]):
        entries.sort()
        self.starts = [e[0] for e in entries]
        self.names = [e[1] for e in entries]
        self.tags = [e[2] for e in entries]

    def find(self, addr: int) -> int:
        """The index of the symbol holding addr, or -1."""
        return bisect.bisect_right(self.starts, addr) - 1


class KernelSymbols(SortedSymbols):
    @classmethod
    def load(cls, path: str = KALLSYMS) -> "KernelSymbols":
        entries = []
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in "tTwW":
                    continue
                module = parts[3].strip("[]") if len(parts) > 3 else "kernel"
                entries.append((int(parts[0], 16), parts[2], module))
        return cls(entries)

    def name(self, addr: int) -> str:
        i = self.find(addr)
        if i < 0 or not self.starts[i]:      # kallsyms reads as zeros without CAP_SYSLOG
            return UNKNOWN
        return f"{self.names[i]}+{addr - self.starts[i]}"

    def module(self, addr: int) -> str:
        i = self.find(addr)
        return self.tags[i] if i >= 0 else UNKNOWN


@record(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    path: str


def read_mappings(pid: int) -> list[Mapping]:
    """The file-backed executable mappings of a process ([] when it is gone)."""
    found = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                    continue
                start, end = (int(a, 16) for a in parts[0].split("-"))
                found.append(Mapping(start, end, int(parts[2], 16), parts[5].rstrip("\n")))
    except OSError:
        return []
    return found


def file_symbols(path: str) -> SortedSymbols | None:
    """The functions of one ELF file by file offset (where a mapping places them, whatever the
    load bias of a PIE or shared object), or None when it cannot be read; tagged with the offset
    each function ends at. Named as elfsym prefers: C++ functions demangled."""
    from pybpf import elfsym    # ELF reading only once a user stack is printed, not at start-up

    try:
        entries = []
        for vaddr, (name, size) in elfsym.functions_by_address(path).items():
            offset = elfsym.file_offset(path, vaddr)
            entries.append((offset, name, offset + size))
        return SortedSymbols(entries)
    except elfsym.SymbolError:
        return None


def _keep(table: dict, key, value, most: int) -> None:
    """table[key] = value, the oldest entry dropped first when it holds `most`."""
    if len(table) >= most:
        table.pop(next(iter(table)))
    table[key] = value


class UserSymbols:
    """The symbols of processes by pid, their mappings kept from the first read, and the
    functions of the files mapped, read once each."""

    def __init__(self):
        self.mappings: dict[int, list[Mapping]] = {}
        self.files: dict[str, SortedSymbols | None] = {}

    def remember(self, pid: int) -> list[Mapping]:
        found = self.mappings.get(pid)
        if found is None:
            found = read_mappings(pid)
            if found:
                _keep(self.mappings, pid, found, MAX_REMEMBERED_PROCESSES)
        return found

    def file(self, path: str) -> SortedSymbols | None:
        if path not in self.files:
            _keep(self.files, path, file_symbols(path), MAX_REMEMBERED_FILES)
        return self.files[path]

    def resolve(self, pid: int, addr: int) -> tuple[str, str]:
        """(func+offset or [unknown], the file mapped there or [unknown])."""
        for m in self.remember(pid):
            if m.start <= addr < m.end:
                symbols, offset = self.file(m.path), addr - m.start + m.offset
                i = symbols.find(offset) if symbols is not None else -1
                # past a sized function's end (a PLT stub, padding) is no function
                if i < 0 or symbols.starts[i] < symbols.tags[i] <= offset:
                    return UNKNOWN, m.path
                return f"{symbols.names[i]}+{offset - symbols.starts[i]}", m.path
        return UNKNOWN, UNKNOWN


class Stack(str):
    """A printed stack: its text (bpftrace's) wherever text goes, keeping its functions
    (innermost first, without offsets) for folded output."""
    functions: tuple[str, ...]
    user: bool

    def __new__(cls, text: str, functions: tuple[str, ...], user: bool) -> "Stack":
        stack = super().__new__(cls, text)
        stack.functions, stack.user = functions, user
        return stack


class Symbols:
    """One session's symbol tables: the kernel's, read from kallsyms when first needed, the user
    side's (UserSymbols), and the session's stack table when its program records stacks."""

    def __init__(self, kallsyms: str = KALLSYMS):
        self._kallsyms = kallsyms
        self._kernel: KernelSymbols | None = None
        self.users = UserSymbols()
        self.stacks: StackTable | None = None

    @property
    def kernel(self) -> KernelSymbols:
        if self._kernel is None:
            self._kernel = KernelSymbols.load(self._kallsyms)
        return self._kernel


class StackTable:
    """The frames of stack ids in one stack-trace map, symbolized and rendered as bpftrace's."""

    def __init__(self, fd: int, lookup: Callable[[int, bytes, int], bytes | None],
                 symbols: Symbols):
        # lookup: pybpf.runtime.maps.lookup, passed in (maps decodes through values, which
        # renders stacks through here)
        self.fd, self.lookup, self.symbols = fd, lookup, symbols
        self._frames: dict[int, tuple[int, ...]] = {}

    def frames(self, stack_id: int) -> tuple[int, ...]:
        """The addresses of a stack, innermost first (none for a failed id: the kernel returns a
        negative errno when it could not record the stack)."""
        if stack_id < 0:
            return ()
        found = self._frames.get(stack_id)
        if found is None:
            raw = self.lookup(self.fd, struct.pack("<I", stack_id), 8 * PERF_MAX_STACK_DEPTH)
            addrs = struct.unpack(f"<{PERF_MAX_STACK_DEPTH}Q", raw) if raw else ()
            found = tuple(a for a in addrs if a)
            self._frames[stack_id] = found
        return found

    def symbolized(self, t: T.StackType, stack_id: int, pid: int) -> list[tuple[int, str, str]]:
        """(address, func+offset, module) of each frame, innermost first, at most t.limit."""
        out = []
        for addr in self.frames(stack_id)[:t.limit]:
            if t.user:
                name, module = self.symbols.users.resolve(pid, addr)
            else:
                kernel = self.symbols.kernel
                name, module = kernel.name(addr), kernel.module(addr)
            out.append((addr, name, module))
        return out

    def render(self, t: T.StackType, stack_id: int, pid: int) -> Stack:
        """bpftrace's text: a newline, then one tab-indented line per frame; nothing at all for a
        stack with no frames (a kernel stack sampled in user mode)."""
        lines = []
        frames = self.symbolized(t, stack_id, pid)
        for addr, name, module in frames:
            if t.mode == "raw":
                lines.append(f"\t{addr:x}")
            elif t.mode == "perf":
                lines.append(f"\t{addr:x} {name} ({module})")
            else:
                lines.append(f"\t{name}")
        text = "\n" + "".join(line + "\n" for line in lines) if lines else ""
        return Stack(text, tuple(name.split("+", 1)[0] for _, name, _ in frames), t.user)


# The symbol tables of the running session: map keys and printf arguments decode through
# pybpf.runtime.values and formatters, which know types, not sessions.
_active: Symbols | None = None


def activate(tables: Symbols) -> None:
    global _active
    _active = tables


def deactivate(tables: Symbols) -> None:
    """The session of `tables` has ended (another may have started since: its tables stay)."""
    global _active
    if _active is tables:
        _active = None


def current() -> Symbols:
    """The running session's tables; outside a session, tables of their own."""
    return _active if _active is not None else Symbols()


def render(t: T.StackType, raw: bytes) -> Stack:
    """A recorded stack (id, pid) as text, through the active session's table."""
    stack_id, pid = struct.unpack_from("<qQ", raw)
    if _active is None or _active.stacks is None:
        return Stack("", (), t.user)
    return _active.stacks.render(t, stack_id, pid)
