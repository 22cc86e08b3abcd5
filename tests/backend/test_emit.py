"""The emit pass: IR to a BPF object in a child process, and LLVM's failures as BackendError
(LLVM's BPF backend may exit() the process it runs in: here that is only the child)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from pybpf.backend.emit import BackendError, Emitter, emit_assembly, emit_object

IR = """target triple = "bpfel"
define i64 @f(ptr %ctx) nounwind section "tracepoint/x" {
  ret i64 7
}
"""


def test_object_and_assembly():
    elf = emit_object(IR)
    assert elf[:4] == b"\x7fELF" and elf[18] == 247          # e_machine EM_BPF
    assert "r0 = 7" in emit_assembly(IR)


def test_objects_are_llvmlite_bindings_byte_for_byte():
    """The child calls llvmlite's library directly: what llvmlite.binding's API makes of the same
    IR, with the same target machine, is what it must make (a changed llvmlite shows here)."""
    import llvmlite.binding as llvm

    from pybpf.backend.emit import CPU
    from pybpf.compiler import compile_to_ir
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "opensnoop.pbt")) as f:
        script = f.read()
    ir_text = compile_to_ir(script)[0]
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    machine = llvm.Target.from_triple("bpfel").create_target_machine(cpu=CPU, opt=2)
    for text in (IR, ir_text):
        module = llvm.parse_assembly(text)
        module.verify()
        assert emit_object(text) == machine.emit_object(module)
        assert emit_assembly(text) == machine.emit_assembly(module)


def test_invalid_ir_is_a_backend_error():
    with pytest.raises(BackendError, match="LLVM could not compile"):
        emit_object("this is not IR")


def test_llvm_exiting_takes_only_the_child():
    # 4 KiB of stack: LLVM's BPF backend reports it by exiting the process
    big = IR.replace("ret i64 7", "%a = alloca [4096 x i8], align 8\n  store volatile i8 1, ptr %a\n"
                     "  ret i64 7")
    with pytest.raises(BackendError):
        emit_object(big)


def test_an_interrupted_emit_kills_and_reaps_its_child():
    """A stop signal's exception raised while the caller waits for LLVM: the child goes with it.
    The child has a session of its own, so a Ctrl-C at the terminal reaches only the caller."""
    class Interrupted(BaseException):
        pass

    def interrupt(signum, frame):
        raise Interrupted
    # Enough functions to keep LLVM busy well past the alarm.
    big = 'target triple = "bpfel"\n' + "".join(
        f'define i64 @f{i}(ptr %ctx) nounwind section "tracepoint/x{i}" {{\n  ret i64 {i}\n}}\n'
        for i in range(3000))
    emitter = Emitter()
    assert os.getsid(emitter.proc.pid) == emitter.proc.pid
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(Interrupted):
            emitter.emit(big)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert emitter.proc.returncode == -signal.SIGKILL


def exited(pid: int, timeout: float = 5.0) -> bool:
    """pid has exited within timeout (a zombie counts: its new parent reaps it soon)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)
    return False


def test_the_child_dies_with_its_parent_even_killed():
    """However the compiler ends (here SIGKILL, which runs no cleanup), LLVM does not run on: the
    child asked for SIGKILL at its parent's death, or saw it had already come."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; from pybpf.backend.emit import Emitter; "
                               "e = Emitter(); print(e.proc.pid, flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    assert exited(child)


def test_an_llvm_parse_error_is_reported_by_its_error_line_not_the_caret_under_it():
    ir_text = ("define i64 @f() !dbg !1 { ret i64 0 }\n"
               "!1 = !DILocation(line: 1, column: 70000, scope: !2)\n!2 = distinct !{}\n")
    with pytest.raises(BackendError, match="error: value for 'column' too large, limit is 65535$"):
        emit_object(ir_text)


# Values that take nearly all of the 512-byte stack, and registers live across the loop's helper
# calls that LLVM must spill beside them.
NEAR_FULL_STACK = """BEGIN {
  $a = 1; $b = 2; $c = 3; $d = 4; $e = 5; $f = 6; $g = 7; $h = 8;
  for $i : 0..$a {
    @m[$i, $b] = str($c);
    @n[$i] = nsecs + $d + $e + $f + $g + $h;
    $s = @m[$i, $b];
    if ($s == "/") { continue; }
    printf("%s %d %d %d %d %d %d\\n", $s, $a, $b, $c, $d, $e, $f);
    printf("%s %s %s\\n", str($g), str($h), comm);
    delete(@m, ($i, $b));
  }
  $t = str($a); $u = str($b); $v = str($c);
  printf("%s %s %s %d %d %d %d %d\\n", $t, $u, $v, $a, $b, $c, $d, $e);
  exit();
}"""


def test_llvm_spills_that_do_not_fit_are_made_room_for():
    from pybpf.backend.emit import StackLimitExceeded
    from pybpf.compiler import compile_source, compile_to_ir
    with pytest.raises(StackLimitExceeded, match="BPF stack limit is exceeded"):
        emit_object(compile_to_ir(NEAR_FULL_STACK)[0])          # the values alone fit
    compiled = compile_source(NEAR_FULL_STACK)                  # lowered again, with room
    assert compiled.elf[:4] == b"\x7fELF"
