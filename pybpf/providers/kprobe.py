"""kprobe:FUNC[+OFFSET] (`k:`) and kretprobe:FUNC (`kr:`), wildcards in FUNC: a KPROBE program whose
context is the probed function's pt_regs, so arg0..arg5 are registers, as are `args.NAME` of a
function with BTF (its first six arguments) and kretprobe's `retval` (ax).

    k:vfs_read { @[comm] = sum(args.count); }       kr:vfs_read { @ = hist(retval); }

Where the kernel has no kprobes but loads fentry programs, the probe moves to fentry/fexit
(`alternative`; pybpf.probes decides).
"""

from __future__ import annotations

import fnmatch
import os

from pybpf import tracefs
from pybpf.program import AttachPoint
from pybpf.providers.base import Context, ProbeGroup
from pybpf.providers.btf_probe import BtfProvider, type_function
from pybpf.uapi.bpf import BpfProgType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf import Btf         # imported when a probe needs BTF, not at start-up

AVAILABLE_FILTER_FUNCTIONS = "available_filter_functions"     # in tracefs: what kprobes can attach to


def kprobe_functions() -> list[str] | None:
    """Functions ftrace (hence kprobes) can attach to, or None when tracefs does not tell (unmounted,
    or unreadable: this machine's lockdown refuses the read)."""
    try:
        with open(os.path.join(tracefs.root(), AVAILABLE_FILTER_FUNCTIONS)) as f:
            return sorted({line.split()[0] for line in f if line.strip()})
    except (OSError, tracefs.TracefsError):
        return None


class Kprobe(BtfProvider):
    context = Context.PT_REGS
    func = True
    prog_type = BpfProgType.KPROBE

    def __init__(self, name: str, spellings: tuple[str, ...], returns: bool, alternative: str):
        self.name, self.spellings, self.section, self.attach_kind = name, spellings, name, name
        self.retval, self.offsets, self.numbered_args = returns, not returns, not returns
        self.alternative = alternative

    def type_point(self, kernel: Btf, name: str, point: AttachPoint, group: ProbeGroup) -> None:
        if not type_function(kernel, name, point, group):
            group.btf_args[point.name] = []       # a function without BTF: arg0..argN still work

    def available(self, group: ProbeGroup, features) -> bool:
        return features.kprobes_available()

    def list_probes(self, pattern: str) -> list[str]:
        functions = kprobe_functions()
        if functions is None:
            return super().list_probes(pattern)
        return [f"{self.name}:{f}" for f in functions if fnmatch.fnmatchcase(f, pattern)]

    def describe(self, target: str) -> list[str]:
        return []                  # untyped: arg0..argN, retval


KPROBE = Kprobe("kprobe", ("kprobe", "k"), returns=False, alternative="fentry")
KRETPROBE = Kprobe("kretprobe", ("kretprobe", "kr"), returns=True, alternative="fexit")
