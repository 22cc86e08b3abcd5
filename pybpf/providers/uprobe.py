"""uprobe:BINARY:FUNC[+OFFSET] (`u:`) and uretprobe:BINARY:FUNC (`ur:`), wildcards in FUNC: a KPROBE
program on a user function, whose context is pt_regs as a kprobe's (arg0..arg5, uretprobe's
`retval`). BINARY is a path, a program on PATH or a library name (libc); the functions are checked
with the reader the run side uses to find their file offsets (pybpf.elfsym).

    u:libc:getpid { @[comm] = count(); }      ur:/usr/bin/bash:readline { printf("%s\\n", str(retval)); }
"""

from __future__ import annotations

import fnmatch

from pybpf.providers.base import Context, ListingError, ProbeGroup, Provider, has_wildcard
from pybpf.uapi.bpf import BpfProgType


class Uprobe(Provider):
    context = Context.PT_REGS
    func = True
    prog_type = BpfProgType.KPROBE

    def __init__(self, name: str, spellings: tuple[str, ...], returns: bool):
        self.name, self.spellings, self.section, self.attach_kind = name, spellings, name, name
        self.retval, self.numbered_args = returns, not returns

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        from pybpf import elfsym         # at first need: most programs have no uprobes
        try:
            binary, name, offset = elfsym.parse_uprobe_target(target)
            if "+" in target and self.retval:
                raise ValueError(f"an offset (+N) is only valid on uprobe: {text}")
            path = elfsym.find_binary(binary)
            names = sorted(n for n in elfsym.function_symbols(path) if fnmatch.fnmatchcase(n, name)) \
                if has_wildcard(name) else [name]
            if not names:
                raise ValueError(f"no function matches {name!r} in {path}")
            for n in names:
                elfsym.uprobe_offset(path, n, offset)
        except elfsym.SymbolError as e:
            raise ValueError(str(e)) from None
        suffix = "+" + target.rpartition("+")[2] if "+" in target else ""
        for n in names:
            group.add(self.point(f"{path}:{n}{suffix}"))

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
