"""pybpf.dwarf_args on programs compiled with -g by the test: which register each argument is
in, and the DWARF types as split BTF over the kernel's (no kernel needed but its BTF)."""

import os

import pytest

from pybpf import btf, dwarf_args

pytestmark = pytest.mark.skipif(not os.path.exists(btf.VMLINUX), reason="needs the kernel's BTF")

SOURCE = r"""
struct big { long a, b, c; };
struct rec { unsigned char tag; unsigned lo : 4, hi : 12; short grid[2][3]; const volatile int *p; };
__attribute__((noinline)) struct big make(int x, struct rec *r) { struct big b = {x, r->hi, 0}; return b; }
__attribute__((noinline)) int pair(struct { int a, b; } two, int after) { return two.a + after; }
int main(void) { struct rec r = {1, 2, 3, {{0}}, 0}; struct big b = make(4, &r); return (int)b.a; }
"""


@pytest.fixture(scope="module")
def typed(compile_c):
    return dwarf_args.function_arguments(compile_c(SOURCE, "-g"), ["make", "pair"], btf.vmlinux())


def test_a_struct_returned_in_memory_takes_the_first_register(typed):
    make = typed.functions["make"]
    assert [name for name, _ in make.args] == ["", "x", "r"]     # rdi: the caller's buffer


def test_a_small_struct_by_value_loses_the_registers_after_it(typed):
    pair = typed.functions["pair"]
    assert pair.args == []
    assert pair.refused["two"] == "passed by value (8 bytes), which pybpf does not read"
    assert pair.refused["after"].startswith("after two, passed by value")


def test_struct_members_bitfields_arrays_and_qualifiers_as_btf(typed):
    b = typed.btf
    (_, r_type), = [a for a in typed.functions["make"].args if a[0] == "r"]
    assert b.c_name(r_type) == "struct rec *"
    record = b.resolve(b.resolve(r_type).type_id)
    members = {m.name: m for m in b.members(record)}
    assert (members["lo"].bit_offset, members["lo"].bitfield_size) == (8, 4)
    assert (members["hi"].bit_offset, members["hi"].bitfield_size) == (12, 12)
    assert b.sizeof(members["grid"].type_id) == 12 and b.offsetof(record, "grid") == 4
    assert b.c_name(members["p"].type_id) in ("const volatile int *", "volatile const int *")
