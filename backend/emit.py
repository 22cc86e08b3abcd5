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
TRIPLE = b"bpfel"

# What the child runs: ctypes and llvmlite's library, which it calls directly (the same functions
# of llvmlite's C layer that llvmlite.binding's parse_assembly, verify, create_target_machine and
# emit_object call, with the same arguments). Importing llvmlite.binding instead took 45-65 ms
# before LLVM could start (importlib.resources to find the library, typing, tempfile, llvmlite.ir,
# every wrapper class); loading the library is ~7 ms. The child first asks to be killed when its
# parent exits, whatever ends the parent (a signal, SIGKILL), and leaves if that already happened
# (argv[2] is the parent's pid): a compile never leaves LLVM running behind it. (Strictly, when
# the parent *thread* that started it ends: an Emitter is used by the thread that made it.)
# tests/backend/test_emit.py checks its objects are llvmlite.binding's, byte for byte.
_CHILD = f"""
import ctypes, os, sys
ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}, 0, 0, 0)
if os.getppid() != int(sys.argv[2]):
    sys.exit(1)
from ctypes import POINTER, byref, c_char_p, c_int, c_size_t, c_void_p
lib = ctypes.CDLL(sys.argv[3])
def function(name, restype, *argtypes):
    f = getattr(lib, "LLVMPY_" + name)
    f.restype, f.argtypes = restype, argtypes
    return f
for each in ("TargetInfos", "Targets", "TargetMCs", "AsmPrinters"):
    function("InitializeAll" + each, None)()
error = c_char_p()
def check(result):
    if not result:
        sys.exit(error.value.decode(errors="replace"))
    return result
target = check(function("GetTargetFromTriple", c_void_p, c_char_p, POINTER(c_char_p))(
    {TRIPLE!r}, byref(error)))
# (target, triple, cpu, features, opt level, reloc, code model, print mc, jit, abi name)
machine = check(function("CreateTargetMachine", c_void_p, c_void_p, c_char_p, c_char_p, c_char_p,
                         c_int, c_char_p, c_char_p, c_int, c_int, c_char_p)(
    target, {TRIPLE!r}, {CPU.encode()!r}, b"", 2, b"default", b"jitdefault", 0, 0, b""))
context = function("GetGlobalContext", c_void_p)()
module = function("ParseAssembly", c_void_p, c_void_p, c_char_p, POINTER(c_char_p))(
    context, sys.stdin.buffer.read(), byref(error))
if error.value:
    sys.exit("LLVM IR parsing error\\n" + error.value.decode(errors="replace"))
check(not function("VerifyModule", ctypes.c_bool, c_void_p, POINTER(c_char_p))(module, byref(error)))
buffer = check(function("TargetMachineEmitToMemory", c_void_p, c_void_p, c_void_p, c_int,
                        POINTER(c_char_p))(machine, module, int(sys.argv[1] == "obj"), byref(error)))
sys.stdout.buffer.write(ctypes.string_at(function("GetBufferStart", c_void_p, c_void_p)(buffer),
                                         function("GetBufferSize", c_size_t, c_void_p)(buffer)))
"""


class BackendError(PybpfError):
    pass


class StackLimitExceeded(BackendError):
    """LLVM's spill slots did not fit beside the program's values in the 512-byte BPF stack."""


def _llvmlite_library() -> str:
    """The path of llvmlite's shared library (what llvmlite.binding loads)."""
    spec = importlib.util.find_spec("llvmlite")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError("llvmlite is not installed: pip install llvmlite")
    from llvmlite.utils import get_library_name
    return os.path.join(spec.submodule_search_locations[0], "binding", get_library_name())


class Emitter:
    """The child, started ahead of need: it loads and initialises LLVM while the compiler's front
    end runs (the IR it waits for on stdin comes last). cancel() when the compile fails first."""

    def __init__(self, assembly: bool = False):
        # A session of its own: a Ctrl-C at the terminal reaches only the caller, which decides
        # (emit() kills the child when the caller's wait for it is interrupted).
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, "asm" if assembly else "obj", str(os.getpid()),
             _llvmlite_library()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
