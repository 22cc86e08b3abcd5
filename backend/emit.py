"""Emit pass: LLVM IR text -> BPF ELF object bytes (or assembly), through llvmlite's BPF target.

    elf = emit_object(ir_text)

LLVM's BPF backend reports some errors by calling exit(1) (stack over 512 bytes, unsupported
memcpy, ...), which would take the whole process down. So the work runs in a child process that
reads the IR on stdin and writes the object on stdout; a child that fails becomes a BackendError
with its last message. The child is a fresh, site-less interpreter rather than a fork: it then
holds LLVM (~60 MB) without a copy of the compiler's own memory, which keeps the peak RSS of a cold
start below bpftrace's. Started first (Emitter), it loads LLVM while the front end works.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys

from pybpf.errors import PybpfError
from pybpf.uapi.prctl import PR_SET_PDEATHSIG

CPU = "v3"          # "generic" is v1: no 32-bit sub-registers, no jmp32

# What the child runs: llvmlite only (no pybpf, no site packages scanned). It first asks to be killed
# when its parent exits, whatever ends the parent (a signal, SIGKILL), and leaves if that already
# happened (argv[2] is the parent's pid): a compile never leaves LLVM running behind it. (Strictly,
# when the parent *thread* that started it ends: an Emitter is used by the thread that made it.)
_CHILD = f"""
import ctypes, os, sys
ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}, 0, 0, 0)
if os.getppid() != int(sys.argv[2]):
    sys.exit(1)
import llvmlite.binding as llvm
llvm.initialize_all_targets()
llvm.initialize_all_asmprinters()
machine = llvm.Target.from_triple("bpfel").create_target_machine(cpu={CPU!r}, opt=2)
module = llvm.parse_assembly(sys.stdin.read())
module.verify()
out = machine.emit_assembly(module).encode() if sys.argv[1] == "asm" else machine.emit_object(module)
sys.stdout.buffer.write(out)
"""


class BackendError(PybpfError):
    pass


class StackLimitExceeded(BackendError):
    """LLVM's spill slots did not fit beside the program's values in the 512-byte BPF stack."""


def _llvmlite_path() -> str:
    spec = importlib.util.find_spec("llvmlite")
    if spec is None or spec.origin is None:
        raise BackendError("llvmlite is not installed: pip install llvmlite")
    return os.path.dirname(os.path.dirname(spec.origin))


class Emitter:
    """The child, started ahead of need: it loads and initialises LLVM while the compiler's front
    end runs (the IR it waits for on stdin comes last). cancel() when the compile fails first."""

    def __init__(self, assembly: bool = False):
        env = dict(os.environ, PYTHONPATH=_llvmlite_path())
        # A session of its own: a Ctrl-C at the terminal reaches only the caller, which decides
        # (emit() kills the child when the caller's wait for it is interrupted).
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _CHILD, "asm" if assembly else "obj", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            start_new_session=True)

    def emit(self, ir_text: str) -> bytes:
        try:
            out, err = self.proc.communicate(ir_text.encode())
        except BaseException:       # e.g. a stop signal's exception: the child must not outlive it
            self.cancel()
            raise
        if self.proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            # An IR parse error ends with the IR line and a caret under it: say the error line.
            errors = [line for line in lines if "error:" in line]
            message = (errors or lines or [f"exit status {self.proc.returncode}"])[-1]
            error = StackLimitExceeded if "BPF stack limit is exceeded" in message else BackendError
            raise error(f"LLVM could not compile the program: {message}")
        return out

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def emit(ir_text: str, assembly: bool = False) -> bytes:
    return Emitter(assembly).emit(ir_text)


def emit_object(ir_text: str) -> bytes:
    return emit(ir_text)


def emit_assembly(ir_text: str) -> str:
    return emit(ir_text, assembly=True).decode()
