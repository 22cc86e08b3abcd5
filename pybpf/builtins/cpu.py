"""The CPU a probe runs on."""

from __future__ import annotations

from pybpf.builtins.entry import identifier, typed
from pybpf.checked import UINT
from pybpf.uapi.bpf import BpfFunc

BUILTINS = (
    identifier("cpu", typed(UINT), lambda g, e: g.helper(BpfFunc.get_smp_processor_id)),
)
