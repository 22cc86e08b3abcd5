"""usdt:BINARY:[PROVIDER:]NAME (`U:`): the static probes <sys/sdt.h> puts in a program or library
(pybpf.usdt_notes), wildcards in PROVIDER and NAME. Each site of a probe is a uprobe on its
address, so a KPROBE program whose context is pt_regs; arg0..argN are read as each site's note
says (a register, memory at a register plus an offset, a constant), so sites whose arguments
differ get programs of their own (pybpf.resources), as bpftrace generates code per site.

    usdt:/usr/bin/prog:myapp:start { printf("%d\\n", arg0); }      U:libpthread:*:mutex_entry { ... }

A probe with a semaphore (a counter the program tests before computing costly arguments) gets it
counted by the kernel: the uprobe carries the semaphore's file offset as its ref_ctr_offset, so
it is set while pybpf runs, in processes started later too, and unset when the probe goes.
With -p PID, BINARY may also be a library name, found among the files the process maps, and the
uprobes fire in that process only.

A point's target is PATH:PROVIDER:NAME (the same for every site of a probe); its perf_event holds
what the run side attaches (runtime/attach/usdt.py): the site's file offset (config2), the
semaphore's (config, bits 32..63) and the pid.
"""

from __future__ import annotations

import fnmatch

from pybpf.program import PerfEvent
from pybpf.providers.base import Context, ListingError, ProbeGroup, Provider
from pybpf.records import replace
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.perf_event import PERF_UPROBE_REF_CTR_OFFSET_SHIFT


def split_target(target: str) -> tuple[str, str, str]:
    """'PATH:PROVIDER:NAME' or 'PATH:NAME' (any provider) -> (PATH, PROVIDER, NAME)."""
    parts = target.split(":")
    if len(parts) == 2 and all(parts):
        return parts[0], "*", parts[1]
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    raise ValueError(f"a usdt probe is usdt:BINARY:[PROVIDER:]NAME, got usdt:{target}")


class Usdt(Provider):
    name = "usdt"
    spellings = ("usdt", "U")
    context = Context.PT_REGS
    numbered_args = True
    prog_type = BpfProgType.KPROBE
    user_memory = True
    section = "usdt"
    attach_kind = "usdt"

    def _binary(self, binary: str, pid: int | None) -> str:
        from pybpf import elfsym
        if pid is None:
            return elfsym.find_binary(binary)
        if not elfsym.process_exists(pid):
            raise elfsym.SymbolError(f"no process with pid {pid}")
        return elfsym.find_mapped_binary(pid, binary)

    def _sites(self, target: str, pid: int | None):
        """(path, [matching sites]) of a target; ValueError for the user."""
        from pybpf import elfsym, usdt_notes
        binary, provider, name = split_target(target)
        try:
            path = self._binary(binary, pid)
            sites = usdt_notes.read_sites(path)
        except (elfsym.SymbolError, usdt_notes.UsdtError) as e:
            raise ValueError(str(e)) from None
        return path, [s for s in sites if fnmatch.fnmatchcase(s.provider, provider)
                      and fnmatch.fnmatchcase(s.name, name)]

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        from pybpf import elfsym, usdt_notes
        path, sites = self._sites(target, group.pid)
        if not sites:
            raise ValueError(f"no USDT probe {text} in {path}" if group.pid is None else
                             f"no USDT probe {text} in {path} (mapped by process {group.pid})")
        for site in sites:
            try:
                args = tuple(self._locate(path, site, arg) for arg in site.args)
                offset = elfsym.file_offset(path, site.pc)
                semaphore = elfsym.file_offset(path, site.semaphore) if site.semaphore else 0
            except (elfsym.SymbolError, usdt_notes.UsdtError) as e:
                raise ValueError(f"{text}: {e}") from None
            event = PerfEvent(type=0, config=semaphore << PERF_UPROBE_REF_CTR_OFFSET_SHIFT,
                              sample_period=0, config2=offset,
                              pid=-1 if group.pid is None else group.pid)
            point = self.point(f"{path}:{site.provider}:{site.name}", perf_event=event)
            group.add(point)
            group.site_args[point] = args

    @staticmethod
    def _locate(path: str, site, arg):
        """A `SYMBOL(%rip)` argument as an offset from the probe's own address, where the
        uprobe's ip is at run time: the binary's load address cancels out."""
        if not arg.symbol:
            return arg
        from pybpf import elfsym
        return replace(
            arg, symbol="", value=elfsym.symbol_address(path, arg.symbol) + arg.value - site.pc)

    def numbered_arg_error(self, group: ProbeGroup, index: int) -> str | None:
        for point in group.points:
            count = len(group.site_args[point])
            if index >= count:
                return f"{point.name} has {count} argument{'' if count == 1 else 's'}" + \
                    (f" at file offset {point.perf_event.config2:#x}" if count else "")
        return None

    def list_probes(self, pattern: str) -> list[str]:
        try:
            path, sites = self._sites(pattern if pattern.count(":") else pattern + ":*:*", None)
        except ValueError as e:
            raise ListingError(str(e)) from None
        return sorted({f"usdt:{path}:{s.provider}:{s.name}" for s in sites})

    def describe(self, target: str) -> list[str]:
        """The argument specs as the notes state them; where sites differ, each spec (`a | b`)."""
        try:
            path, sites = self._sites(target, None)
        except ValueError as e:
            raise ListingError(str(e)) from None
        if not sites:
            raise ListingError(f"no USDT probe usdt:{target} in {path}")
        by_index: dict[int, list[str]] = {}     # sites that differ: each spec once, in site order
        for site in sites:
            for i, spec in enumerate(site.arg_text.split()):
                if spec not in by_index.setdefault(i, []):
                    by_index[i].append(spec)
        return [f"    arg{i}: {' | '.join(specs)}" for i, specs in sorted(by_index.items())]


USDT = Usdt()
