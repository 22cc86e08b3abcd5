"""`pybpf --info`: what this machine offers pybpf, found by asking the kernel (each map type created,
each program type and helper offered to the verifier), in bpftrace --info's sections.

    print(render_info("0.1.0"))        # System / Build / Kernel helpers / Kernel features / Map types / ...
"""

from __future__ import annotations

import os
import platform
import sys

from pybpf.program import MapDef
from pybpf.runtime.attach.kprobe import kprobes_available
from pybpf.runtime.attach.link import call_helper_program
from pybpf.runtime.attach.uprobe import uprobes_available
from pybpf.runtime.errors import BpfError, VerifierError
from pybpf.runtime.loader import create_map, load_program, lockdown_mode
from pybpf.uapi.bpf import RETURN_ZERO, BpfFunc, BpfMapType, BpfProgType

BTF_FILE = "/sys/kernel/btf/vmlinux"

# (map type, key size, value size, entries) that each type takes
_MAPS = {
    BpfMapType.HASH: (4, 8, 1), BpfMapType.ARRAY: (4, 8, 1), BpfMapType.PROG_ARRAY: (4, 4, 1),
    BpfMapType.PERF_EVENT_ARRAY: (4, 4, 1), BpfMapType.PERCPU_HASH: (4, 8, 1),
    BpfMapType.PERCPU_ARRAY: (4, 8, 1), BpfMapType.STACK_TRACE: (4, 8 * 127, 1),
    BpfMapType.LRU_HASH: (4, 8, 1), BpfMapType.LRU_PERCPU_HASH: (4, 8, 1),
    BpfMapType.RINGBUF: (0, 0, os.sysconf("SC_PAGE_SIZE")),
}


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def map_type_available(map_type: BpfMapType) -> bool:
    key, value, entries = _MAPS[map_type]
    try:
        os.close(create_map("pybpf_info", MapDef(map_type, key, value, entries)))
        return True
    except BpfError:
        return False


def _loads(prog_type: int, insns: bytes) -> bool | str:
    """True when the program loads; the verifier's log when it refuses it; False when the kernel
    does not take the program type at all."""
    try:
        os.close(load_program("pybpf_info", prog_type, insns, "GPL"))
        return True
    except VerifierError as e:
        return e.log
    except BpfError:
        return False


def program_type_available(prog_type: BpfProgType) -> bool:
    return _loads(prog_type, RETURN_ZERO) is True


def helper_available(func: BpfFunc) -> bool:
    """Offered to a kprobe program with nothing in its argument registers: a helper the kernel
    knows fails on its arguments, one it does not know fails as an unknown function."""
    outcome = _loads(BpfProgType.KPROBE, call_helper_program(func))
    if isinstance(outcome, str):
        return "unknown func" not in outcome and "invalid func" not in outcome
    return outcome


def render_info(version: str) -> str:
    """version: pybpf's, which the caller (the CLI) knows."""
    import llvmlite
    from llvmlite import binding

    u = os.uname()
    lines = ["System", f"  OS: {u.sysname} {u.release} {u.version}", f"  Arch: {u.machine}", "",
             "Build", f"  version: v{version}",
             f"  Python: {platform.python_version()} ({sys.executable})",
             f"  llvmlite: {llvmlite.__version__}",
             f"  LLVM: {'.'.join(map(str, binding.llvm_version_info))}", "",
             "Kernel helpers"]
    lines += [f"  {func.name}: {_yes(helper_available(func))}" for func in BpfFunc]
    lines += ["", "Kernel features", f"  btf: {_yes(os.path.exists(BTF_FILE))}",
              f"  lockdown: {lockdown_mode() or 'none'}", "", "Map types"]
    lines += [f"  {t.name.lower()}: {_yes(map_type_available(t))}" for t in _MAPS]
    lines += ["", "Program types"]
    lines += [f"  {t.name.lower()}: {_yes(program_type_available(t))}" for t in BpfProgType
              if t not in (BpfProgType.UNSPEC, BpfProgType.TRACING)]
    lines += ["", "Probe types", f"  kprobe: {_yes(kprobes_available())}",
              f"  uprobe: {_yes(uprobes_available())}",
              f"  tracepoint: {_yes(os.path.isdir('/sys/kernel/tracing/events'))}"]
    return "\n".join(lines) + "\n"
