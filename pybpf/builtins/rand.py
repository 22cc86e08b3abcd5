"""Random numbers."""

from __future__ import annotations

from pybpf.builtins.entry import identifier, typed
from pybpf.checked import UINT
from pybpf.uapi.bpf import BpfFunc

BUILTINS = (
    identifier("rand", typed(UINT), lambda g, e: g.helper(BpfFunc.get_prandom_u32)),
)
