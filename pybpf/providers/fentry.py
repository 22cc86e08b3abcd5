"""fentry:FUNC (`f:`, `kfunc:`) and fexit:FUNC (`fr:`, `kretfunc:`), wildcards in FUNC: a TRACING
program loaded against the function's BTF id (one program per function), whose context is the
arguments, one u64 each, then fexit's return value; all typed from BTF.

    f:vfs_read { @[comm] = sum(args.count); }       fr:vfs_read { @ = hist(retval); }

Where the kernel refuses fentry (lockdown, here) but has kprobes, the probe moves to
kprobe/kretprobe (`alternative`; pybpf.probes decides).
"""

from __future__ import annotations

from pybpf.program import AttachPoint
from pybpf.providers.base import Context, ProbeGroup, ProbeNotFound
from pybpf.providers.btf_probe import BtfProvider, describe_function, describing, type_function
from pybpf.uapi.bpf import BpfAttachType, BpfProgType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf import Btf         # imported when a probe needs BTF, not at start-up


class Fentry(BtfProvider):
    context = Context.BTF_ARGS
    func = True
    prog_type = BpfProgType.TRACING
    attach_kind = "fentry"

    def __init__(self, name: str, spellings: tuple[str, ...], returns: bool, alternative: str):
        self.name, self.spellings, self.section = name, spellings, name
        self.retval, self.numbered_args, self.alternative = returns, not returns, alternative
        self.expected_attach_type = BpfAttachType.TRACE_FEXIT if returns else BpfAttachType.TRACE_FENTRY

    def type_point(self, kernel: Btf, name: str, point: AttachPoint, group: ProbeGroup) -> None:
        if not type_function(kernel, name, point, group):
            raise ProbeNotFound(f"function not found: {name} (no BTF for it; fentry/fexit need BTF)")

    def available(self, group: ProbeGroup, features) -> bool:
        first = group.btf_target[group.points[0].name]
        return features.fentry_loadable(first, self.expected_attach_type)

    def describe(self, target: str) -> list[str]:
        return describing(f"{self.name}:{target}", lambda: describe_function(target, self.retval))


FENTRY = Fentry("fentry", ("fentry", "f", "kfunc"), returns=False, alternative="kprobe")
FEXIT = Fentry("fexit", ("fexit", "fr", "kretfunc"), returns=True, alternative="kretprobe")
