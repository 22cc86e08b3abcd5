"""The running kernel's answers to the compiler's questions (pybpf.features.Features), each asked
on first need and cached by the functions it calls.

    KernelFeatures().kprobes_available()          # False here: CONFIG_KPROBES is not set
"""

from __future__ import annotations

from pybpf.runtime.attach.fentry import fentry_available
from pybpf.runtime.attach.kprobe import kprobes_available
from pybpf.runtime.attach.link import attach_cookies_available
from pybpf.runtime.attach.uprobe_multi import uprobe_multi_available


class KernelFeatures:
    def kprobes_available(self) -> bool:
        return kprobes_available()

    def fentry_loadable(self, func_btf_id: int, attach_type: int) -> bool:
        return fentry_available(func_btf_id, attach_type)

    def attach_cookies(self, prog_type: int) -> bool:
        return attach_cookies_available(prog_type)

    def uprobe_multi(self) -> bool:
        return uprobe_multi_available()
