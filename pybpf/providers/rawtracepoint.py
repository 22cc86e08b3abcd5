"""rawtracepoint:NAME (`rt:`), wildcards in NAME: a RAW_TRACEPOINT program whose context is the
tracepoint's arguments, one u64 each, typed by the kernel's `btf_trace_NAME` typedef.

    rt:sched_switch { printf("%s\\n", args.next->comm); }

A block that calls a helper only BPF tracing programs have (socket_cookie) loads instead as a BTF
tracepoint, BTF_RAWTRACEPOINT: a TRACING program (expected attach type TRACE_RAW_TP) loaded
against the typedef, one per tracepoint, whose pointer arguments the verifier knows by their BTF
type. (bpftrace 0.26 loads every rawtracepoint so; pybpf only where it must, raw tracepoint
programs being the cheaper to load and the only ones older kernels have.)
"""

from __future__ import annotations

from pybpf.program import AttachPoint
from pybpf.providers.base import Context, ProbeGroup, ProbeNotFound
from pybpf.providers.btf_probe import BtfProvider, arg_lines, btf_for, describing
from pybpf.uapi.bpf import BpfAttachType, BpfProgType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf import Btf         # imported when a probe needs BTF, not at start-up


class RawTracepoint(BtfProvider):
    name = "rawtracepoint"
    spellings = ("rawtracepoint", "rt")
    context = Context.BTF_ARGS
    prog_type = BpfProgType.RAW_TRACEPOINT
    section = "raw_tracepoint"
    attach_kind = "rawtracepoint"
    btf_kind = "rawtracepoint"

    def type_point(self, kernel: Btf, name: str, point: AttachPoint, group: ProbeGroup) -> None:
        if kernel.tracepoint_typedef(name) is None:
            raise ProbeNotFound(f"rawtracepoint not found: {name} (no btf_trace_{name} in the kernel's "
                             "BTF)")
        group.btf_args[point.name] = [(a.name, a.type_id) for a in kernel.tracepoint_args(name)]
        group.btf_target[point.name] = kernel.tracepoint_typedef(name).id

    def describe(self, target: str) -> list[str]:
        def lines():
            btf, tp = btf_for(target)
            return arg_lines(btf, btf.tracepoint_args(tp))
        return describing(f"{self.name}:{target}", lines)


class BtfRawTracepoint(RawTracepoint):
    """The program kind of a rawtracepoint block that needs a tracing program: not a spelling of
    its own (pybpf.resources picks it)."""
    spellings = ()
    prog_type = BpfProgType.TRACING
    expected_attach_type = BpfAttachType.TRACE_RAW_TP
    section = "tp_btf"


RAWTRACEPOINT = RawTracepoint()
BTF_RAWTRACEPOINT = BtfRawTracepoint()
