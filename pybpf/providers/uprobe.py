"""uprobe:BINARY:FUNC[+OFFSET] and uprobe:BINARY:ADDRESS (`u:`), uretprobe:BINARY:FUNC (`ur:`),
wildcards in FUNC (`u:libfoo:*` is every function of the library, each address once): a KPROBE
program on a user function, whose context is pt_regs as a kprobe's (arg0..arg5, uretprobe's
`retval`). BINARY is a path, a program on PATH or a library name (libc); with -p PID also a file
the process maps, and the probes fire in that process only. FUNC may be a C++ name, demangled
(`u:./app:ns::add*`). The functions are checked with the reader the run side uses to find their
file offsets (pybpf.elfsym): an OFFSET must stay inside its function, an ADDRESS (a virtual
address of the binary, as in `objdump -d`) inside one.

    u:libc:getpid { @[comm] = count(); }      ur:/usr/bin/bash:readline { printf("%s\\n", str(retval)); }
    u:/usr/bin/app:0x401136 { ... }           u:/usr/bin/app:main+8 { ... }
"""

from __future__ import annotations

from pybpf.program import PerfEvent
from pybpf.providers.base import (Context, ListingError, ProbeGroup, ProbeNotFound, Provider,
                                  has_wildcard)
from pybpf.uapi.bpf import BpfProgType


class Uprobe(Provider):
    context = Context.PT_REGS
    func = True
    prog_type = BpfProgType.KPROBE
    user_memory = True

    def __init__(self, name: str, spellings: tuple[str, ...], returns: bool):
        self.name, self.spellings, self.section, self.attach_kind = name, spellings, name, name
        self.retval, self.numbered_args = returns, not returns

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
        for n in names:
            group.add(self.point(f"{path}:{n}{suffix}", perf_event=event))

    def list_probes(self, pattern: str) -> list[str]:
        from pybpf import elfsym
        try:
            return elfsym.list_uprobes(pattern, self.name)
        except elfsym.SymbolError as e:
            raise ListingError(str(e)) from None

    def describe(self, target: str) -> list[str]:
        return []                  # untyped: arg0..argN, retval


UPROBE = Uprobe("uprobe", ("uprobe", "u"), returns=False)
URETPROBE = Uprobe("uretprobe", ("uretprobe", "ur"), returns=True)
