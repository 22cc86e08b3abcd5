"""Emit pass: LLVM IR text -> BPF ELF object bytes (or assembly), through llvmlite's BPF target.

    elf = emit_object(ir_text)

LLVM's BPF backend reports some errors by calling exit(1) (stack over 512 bytes, unsupported
memcpy, ...), which would take the whole process down. So the work runs in a forked child that
hands the bytes back through a pipe; a child that dies becomes a BackendError with its stderr.
"""

from __future__ import annotations

import os
import struct

CPU = "v3"          # "generic" is v1: no 32-bit sub-registers, no jmp32


class BackendError(Exception):
    pass


def _target_machine():
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm, llvm.Target.from_triple("bpfel").create_target_machine(cpu=CPU, opt=2)


def _compile(ir_text: str, assembly: bool) -> bytes:
    llvm, machine = _target_machine()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    if assembly:
        return machine.emit_assembly(module).encode()
    return machine.emit_object(module)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def emit(ir_text: str, assembly: bool = False) -> bytes:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(err_w, 2)
            try:
                payload = b"\0" + _compile(ir_text, assembly)
            except Exception as e:  # reported to the parent, which raises it
                payload = b"\1" + f"{type(e).__name__}: {e}".encode()
            os.write(out_w, struct.pack("<Q", len(payload)))
            view = memoryview(payload)
            while view:
                view = view[os.write(out_w, view):]
        except BaseException:
            status = 2
        finally:
            os._exit(status)
    os.close(out_w)
    os.close(err_w)
    data = _read_all(out_r)
    errors = _read_all(err_r).decode(errors="replace").strip()
    os.close(out_r)
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    if len(data) < 8 or len(data) - 8 != struct.unpack("<Q", data[:8])[0]:
        raise BackendError(f"LLVM stopped while compiling the program (exit status "
                           f"{os.waitstatus_to_exitcode(status)}): {errors or 'no message'}")
    payload = data[8:]
    if payload[:1] == b"\1":
        raise BackendError(payload[1:].decode(errors="replace"))
    return payload[1:]


def emit_object(ir_text: str) -> bytes:
    return emit(ir_text)


def emit_assembly(ir_text: str) -> str:
    return emit(ir_text, assembly=True).decode()
