"""Symbolization at print time: kallsyms by bisection, user frames through a process's mappings
and its files' ELF symbols, and bpftrace's three stack texts."""

import io
import subprocess
import time

from pybpf import elfsym
from pybpf import types as T
from pybpf.runtime import symbols

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81000100 t do_thing
ffffffff81000200 D some_data
ffffffff81000300 T other_thing
ffffffffc0000000 t mod_func\t[mymod]
"""


def test_kernel_names_by_bisection(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    k = symbols.KernelSymbols.load(str(path))
    assert k.name(0xffffffff81000104) == "do_thing+4"
    assert k.name(0xffffffff81000250) == "do_thing+336"      # data symbols are not functions
    assert k.name(0xffffffffc0000010) == "mod_func+16"
    assert k.module(0xffffffffc0000010) == "mymod"
    assert k.module(0xffffffff81000300) == "kernel"
    assert k.name(0x1000) == symbols.UNKNOWN


class FakeTable(symbols.StackTable):
    """A stack table whose frames are given rather than read from a kernel map."""

    def __init__(self, frames, tables):
        super().__init__(-1, lookup=None, symbols=tables)
        self._frames = frames


def test_the_three_modes_and_the_frame_limit(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text(KALLSYMS)
    table = FakeTable({7: (0xffffffff81000104, 0xffffffff81000301)}, symbols.Symbols(str(path)))
    assert table.render(T.StackType(False), 7, 0) == "\n\tdo_thing+4\n\tother_thing+1\n"
    assert table.render(T.StackType(False, "bpftrace", 1), 7, 0) == "\n\tdo_thing+4\n"
    assert table.render(T.StackType(False, "perf"), 7, 0) == \
        "\n\tffffffff81000104 do_thing+4 (kernel)\n\tffffffff81000301 other_thing+1 (kernel)\n"
    assert table.render(T.StackType(False, "raw"), 7, 0) == \
        "\n\tffffffff81000104\n\tffffffff81000301\n"
    assert table.render(T.StackType(False), -14, 0) == ""       # -EFAULT: no stack recorded


def test_user_frames_of_a_running_pie_by_its_load_bias(compile_c):
    prog = compile_c("int marker_function(void) { return 7; }\n"
                     "int main(void) { char c; return (int)read(0, &c, 1) + marker_function(); }\n",
                     "-fPIE", "-pie", "-Wno-implicit-function-declaration")
    vaddr = elfsym.function_symbols(prog)["marker_function"][0]
    offset = elfsym.file_offset(prog, vaddr)
    child = subprocess.Popen([prog], stdin=subprocess.PIPE)
    users = symbols.UserSymbols()
    try:
        deadline = time.monotonic() + 10
        while not any(m.path == prog for m in symbols.read_mappings(child.pid)):
            assert time.monotonic() < deadline, "the program never mapped itself"
            time.sleep(0.01)
        (m,) = [m for m in users.remember(child.pid)
                if m.path == prog and m.offset <= offset < m.offset + m.end - m.start]
        addr = m.start + offset - m.offset + 3
        assert addr != vaddr + 3                      # a PIE runs away from its link addresses
        assert users.resolve(child.pid, addr) == ("marker_function+3", prog)
        assert users.resolve(child.pid, 0x10) == (symbols.UNKNOWN, symbols.UNKNOWN)
    finally:
        child.communicate(b"x", timeout=10)
    assert symbols.read_mappings(child.pid) == []     # gone: resolved from the mappings kept
    assert users.resolve(child.pid, addr) == ("marker_function+3", prog)


def test_folded_output_outermost_first_others_then_user_then_kernel():
    from pybpf.mapkinds.base import MapKind
    from pybpf.program import MapSpec
    from pybpf.runtime.output import make_output

    user = symbols.Stack("\n\tleaf+1\n\tmain+2\n", ("leaf", "main"), True)
    same_user = symbols.Stack("\n\tleaf+9\n\tmain+2\n", ("leaf", "main"), True)
    kernel = symbols.Stack("\n\tdo_x+1\n", ("do_x",), False)
    spec = MapSpec("@", "AT_", MapKind.COUNT,
                   (T.StackType(False), T.StringType(16), T.StackType(True)), T.IntType())
    stream = io.StringIO()
    make_output("folded", stream).map(spec, [((kernel, "spin", user), 3),
                                             ((kernel, "spin", same_user), 4),
                                             ((symbols.Stack("", (), False), "spin", user), 1)])
    assert stream.getvalue() == "spin;main;leaf 1\nspin;main;leaf;do_x 7\n"


def test_folded_output_leaves_other_maps_as_text():
    from pybpf.mapkinds.base import MapKind
    from pybpf.program import MapSpec
    from pybpf.runtime.output import make_output

    stream = io.StringIO()
    make_output("folded", stream).map(MapSpec("@", "AT_", MapKind.COUNT, (T.IntType(),),
                                              T.IntType()), [((1,), 2)])
    assert stream.getvalue() == "@[1]: 2\n"


UPPER_CPP = r"""
namespace Shapes { struct Box { __attribute__((noinline)) int area(int w) { __asm__ volatile(""); return w * w; } }; }
int main(int argc, char **argv) { Shapes::Box b; return b.area(argc) & 1; }
"""


def test_cpp_frames_are_named_demangled(compile_c):
    """Whatever the names sort as (`Shapes::` before `_ZN6Shapes`), a frame is named by the
    demangled name (pybpf demangles with binutils' c++filt)."""
    import shutil

    import pytest
    if not shutil.which("c++filt"):
        pytest.skip("no c++filt (binutils)")
    prog = compile_c(UPPER_CPP, "-x", "c++")
    table = symbols.file_symbols(prog)
    vaddr, _ = elfsym.function_symbols(prog)["Shapes::Box::area(int)"]
    offset = elfsym.file_offset(prog, vaddr)
    assert table.names[table.find(offset + 1)] == "Shapes::Box::area(int)"
