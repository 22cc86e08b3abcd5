"""What the compiler asks of the kernel it compiles for, as one object handed to the passes.

    features = FixedFeatures(kprobes=False, fentry=True)       # tests, or another machine's answers
    compile_source("kprobe:vfs_read { @ = count(); }", options=CompileOptions(features=features))

The front end only asks; the real answers come from pybpf.runtime.features.KernelFeatures, which
the compile driver (pybpf/compiler.py) builds when it is given none, and which answers each
question on first need: a program without kernel-function probes never asks.
"""

from __future__ import annotations

from pybpf.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object       # only type checkers read the protocol; typing costs ~2 ms at every start


class Features(Protocol):
    def kprobes_available(self) -> bool:
        """Whether the kernel has the kprobe PMU (CONFIG_KPROBES)."""

    def fentry_loadable(self, func_btf_id: int, attach_type: int) -> bool:
        """Whether the kernel loads a TRACING program of expected attach type `attach_type` on
        the vmlinux FUNC `func_btf_id` (lockdown refuses them here)."""

    def attach_cookies(self, prog_type: int) -> bool:
        """Whether programs of `prog_type` can read the bpf cookie they were attached with
        (bpf_get_attach_cookie: tracepoints since 5.15, raw tracepoints since 6.10)."""

    def uprobe_multi(self) -> bool:
        """Whether the kernel attaches many uprobes through one link (BPF_TRACE_UPROBE_MULTI,
        Linux 6.6)."""


@record(frozen=True)
class FixedFeatures:
    """Answers given up front."""
    kprobes: bool = False
    fentry: bool = False
    cookies: bool = False
    uprobe_multi_links: bool = False

    def kprobes_available(self) -> bool:
        return self.kprobes

    def fentry_loadable(self, func_btf_id: int, attach_type: int) -> bool:
        return self.fentry

    def attach_cookies(self, prog_type: int) -> bool:
        return self.cookies

    def uprobe_multi(self) -> bool:
        return self.uprobe_multi_links


# bpftrace 0.26's --no-feature names. pybpf attaches kprobes by perf events only (never by
# kprobe_multi links or kprobe sessions), so only uprobe_multi changes what it does.
NO_FEATURE_NAMES = ("kprobe_multi", "kprobe_session", "uprobe_multi")


class WithoutFeatures:
    """Another Features' answers, as if the kernel lacked the features --no-feature names."""

    def __init__(self, features: Features, disabled: tuple[str, ...]):
        self.features = features
        self.disabled = disabled

    def kprobes_available(self) -> bool:
        return self.features.kprobes_available()

    def fentry_loadable(self, func_btf_id: int, attach_type: int) -> bool:
        return self.features.fentry_loadable(func_btf_id, attach_type)

    def attach_cookies(self, prog_type: int) -> bool:
        return self.features.attach_cookies(prog_type)

    def uprobe_multi(self) -> bool:
        return "uprobe_multi" not in self.disabled and self.features.uprobe_multi()
