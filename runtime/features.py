"""The running kernel's answers to the compiler's questions (pybpf.features.Features), each asked
on first need and cached by the functions it calls.

    KernelFeatures().kprobes_available()          # False here: CONFIG_KPROBES is not set
"""

from __future__ import annotations


class KernelFeatures:
    """Each answer imports only the attach module that finds it out: a compile asks one or two
    of them (tracepoints only cookies, kprobes kprobes and fentry), and each module costs 1-3 ms."""

    def kprobes_available(self) -> bool:
        from pybpf.runtime.attach.kprobe import kprobes_available
        return kprobes_available()

    def fentry_loadable(self, func_btf_id: int, attach_type: int) -> bool:
        from pybpf.runtime.attach.fentry import fentry_available
        return fentry_available(func_btf_id, attach_type)

    def attach_cookies(self, prog_type: int) -> bool:
        from pybpf.runtime.attach.link import attach_cookies_available
        return attach_cookies_available(prog_type)

    def uprobe_multi(self) -> bool:
        from pybpf.runtime.attach.uprobe_multi import uprobe_multi_available
        return uprobe_multi_available()
