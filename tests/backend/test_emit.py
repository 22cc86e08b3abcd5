"""The emit pass: IR to a BPF object in a child process, and LLVM's failures as BackendError
(LLVM's BPF backend may exit() the process it runs in: here that is only the child)."""

import pytest

from pybpf.backend.emit import BackendError, emit_assembly, emit_object

IR = """target triple = "bpfel"
define i64 @f(ptr %ctx) nounwind section "tracepoint/x" {
  ret i64 7
}
"""


def test_object_and_assembly():
    elf = emit_object(IR)
    assert elf[:4] == b"\x7fELF" and elf[18] == 247          # e_machine EM_BPF
    assert "r0 = 7" in emit_assembly(IR)


def test_invalid_ir_is_a_backend_error():
    with pytest.raises(BackendError, match="LLVM could not compile"):
        emit_object("this is not IR")


def test_llvm_exiting_takes_only_the_child():
    # 4 KiB of stack: LLVM's BPF backend reports it by exiting the process
    big = IR.replace("ret i64 7", "%a = alloca [4096 x i8], align 8\n  store volatile i8 1, ptr %a\n"
                     "  ret i64 7")
    with pytest.raises(BackendError):
        emit_object(big)
