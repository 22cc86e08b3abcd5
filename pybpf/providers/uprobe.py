"""uprobe:BINARY:FUNC[+OFFSET] and uprobe:BINARY:ADDRESS (`u:`), uretprobe:BINARY:FUNC (`ur:`),
wildcards in FUNC (`u:libfoo:*` is every function of the library, each address once): a KPROBE
program on a user function, whose context is pt_regs as a kprobe's (arg0..arg5, uretprobe's
`retval`). BINARY is a path, a program on PATH or a library name (libc); with -p PID also a file
the process maps, and the probes fire in that process only. FUNC may be a C++ name, demangled
(`u:./app:ns::add*`). The functions are checked with the reader the run side uses to find their
file offsets (pybpf.elfsym): an OFFSET must stay inside its function, an ADDRESS (a virtual
address of the binary, as in `objdump -d`) inside one. `args.NAME` in a uprobe on a function
whose DWARF is present (built with -g) reads its argument by name, typed from the DWARF
(pybpf.dwarf_args, read only when the block reads `args`), as bpftrace; `-lv` lists them.

    u:libc:getpid { @[comm] = count(); }      ur:/usr/bin/bash:readline { printf("%s\\n", str(retval)); }
    u:/usr/bin/app:0x401136 { ... }           u:/usr/bin/app:main+8 { ... }
"""

from __future__ import annotations

from pybpf import ast
from pybpf.program import PerfEvent
from pybpf.providers.base import (Args, Context, ListingError, ProbeGroup, ProbeNotFound,
                                  Provider, has_wildcard)
from pybpf.uapi.bpf import BpfProgType


class Uprobe(Provider):
    context = Context.PT_REGS
    func = True
    prog_type = BpfProgType.KPROBE
    user_memory = True

    def __init__(self, name: str, spellings: tuple[str, ...], returns: bool):
        self.name, self.spellings, self.section, self.attach_kind = name, spellings, name, name
        self.retval, self.numbered_args = returns, not returns
        self.args = Args.NONE if returns else Args.BTF
        self.multi_attach_kind = name + "_multi"       # runtime/attach/uprobe_multi.py

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        from pybpf import elfsym, facts  # at first need: most programs have no uprobes
        try:
            binary, name, offset = elfsym.parse_uprobe_target(target)
            if offset and self.retval:
                raise ValueError(f"an offset (+N) is only valid on uprobe: {text}")
            if group.pid is None:
                path = elfsym.find_binary(binary)
            elif not elfsym.process_exists(group.pid):
                raise elfsym.SymbolError(f"no process with pid {group.pid}")
            else:
                path = elfsym.find_mapped_binary(group.pid, binary)
            names = elfsym.matching_functions(path, name) if has_wildcard(name) else [name]
            if not names:
                raise ProbeNotFound(f"no function matches {name!r} in {path}")
            if self.retval and elfsym.parse_address(name) is not None:
                raise ValueError(f"a uretprobe is on a function, not an address: {text}")
            for n in names:
                elfsym.uprobe_offset(path, n, offset)
            group.depends_on.add(facts.observe("file", path))
        except elfsym.SymbolNotFound as e:
            # a library or function this system lacks: the missing_probes setting decides
            raise ProbeNotFound(str(e)) from None
        except (elfsym.SymbolError, OSError) as e:
            raise ValueError(str(e)) from None
        suffix = f"+{offset}" if offset else ""
        event = None if group.pid is None else PerfEvent(type=0, config=0, sample_period=0,
                                                           pid=group.pid)
        points = [self.point(f"{path}:{n}{suffix}", perf_event=event) for n in names]
        if self.args is Args.BTF and ast.reads_builtin(group.probe, "args"):
            self._type_arguments(text, path, names, offset, points, group)
        for point in points:
            group.add(point)

    @staticmethod
    def _type_arguments(text: str, path: str, names: list[str], offset: int, points,
                        group: ProbeGroup) -> None:
        """args.NAME: the functions' arguments from their DWARF, into the group."""
        from pybpf import btf, dwarf_args, elfsym
        if offset or any(elfsym.parse_address(n) is not None for n in names):
            raise ValueError(f"{text}: args are a function's, at its entry: not at an offset "
                             "or an address")
        try:
            typed = dwarf_args.function_arguments(path, names, btf.vmlinux())
        except (dwarf_args.DwarfError, btf.BtfError) as e:
            raise ValueError(f"{text}: {e}") from None
        if group.user_btf is not None:
            raise ValueError(f"{text}: args in a probe with several uprobe attach points are not "
                             "supported yet (a wildcard is one): write a probe for each")
        group.user_btf = typed.btf
        for point, name in zip(points, names):
            found = typed.functions.get(name, dwarf_args.FunctionArgs())
            group.btf_args[point.name], group.refused_args[point.name] = found.args, found.refused

    def list_probes(self, pattern: str) -> list[str]:
        from pybpf import elfsym
        try:
            return elfsym.list_uprobes(pattern, self.name)
        except elfsym.SymbolError as e:
            raise ListingError(str(e)) from None

    def describe(self, target: str) -> list[str]:
        """A uprobe's arguments as its DWARF types them (none without DWARF), `TYPE NAME`; a
        uretprobe has none (retval is untyped)."""
        if self.retval:
            return []
        from pybpf import btf, dwarf_args, elfsym
        try:
            binary, name, _ = elfsym.parse_uprobe_target(target)
            path = elfsym.find_binary(binary)
            typed = dwarf_args.function_arguments(path, [name], btf.vmlinux())
        except (dwarf_args.DwarfError, elfsym.SymbolError):
            return []
        except btf.BtfError as e:
            raise ListingError(str(e)) from None
        return [f"    {typed.btf.c_name(type_id)} {arg}"
                for arg, type_id in typed.functions.get(name, dwarf_args.FunctionArgs()).params]


UPROBE = Uprobe("uprobe", ("uprobe", "u"), returns=False)
URETPROBE = Uprobe("uretprobe", ("uretprobe", "ur"), returns=True)
