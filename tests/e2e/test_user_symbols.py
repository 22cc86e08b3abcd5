"""Symbols of user binaries: uaddr("name") read in uprobes and uretprobes of a PIE and of a
fixed-address program, as bpftrace 0.26's stdlib reference describes it."""

import re

import pytest

from e2e_helpers import run_pybpf

GLOBALS = r"""
unsigned char g8 = 200; unsigned short g16 = 60000; int g32 = -5; long g64 = 1L << 40;
char name[] = "hello";
__attribute__((noinline)) int report(int i) { __asm__ volatile(""); return i; }
int main(void) { int s = 0; for (int i = 0; i < 3; i++) { g32 += 1; g64 += i; s += report(i); } return s & 1; }
"""


@pytest.mark.kernel
@pytest.mark.parametrize("flags", [("-pie", "-fPIE"), ("-no-pie",)])
def test_uaddr_reads_globals_at_their_size(compile_c, flags):
    """A pointer to an unsigned integer of the symbol's size (uint64 for others, as `name`);
    in a PIE the load bias is added where the probe fires (bpf_get_func_ip)."""
    prog = compile_c(GLOBALS, *flags)
    r = run_pybpf(["-c", prog, "-e",
                   f'uprobe:{prog}:report {{ printf("%d %d %d %d %s %d\\n", *uaddr("g8"), '
                   '*uaddr("g16"), *uaddr("g32"), *uaddr("g64"), str(uaddr("name")), arg0); } '
                   f'uretprobe:{prog}:report {{ @[*uaddr("g32")] = count(); }}'])
    assert r.returncode == 0, r.stderr
    # g32 is an int, read as uint32 (ELF has no signedness: bpftrace assumes unsigned)
    assert re.findall(r"^\d+ .*$", r.stdout, re.M) == [
        f"200 60000 {2**32 - 4 + i} {2**40 + i * (i + 1) // 2} hello {i}" for i in range(3)]
    assert re.findall(r"^@\[(\d+)\]: 1$", r.stdout, re.M) == [str(2**32 - 4 + i) for i in range(3)]


@pytest.mark.kernel
def test_uaddr_of_a_missing_symbol(compile_c):
    prog = compile_c(GLOBALS)
    r = run_pybpf(["-e", f'uprobe:{prog}:report {{ @ = uaddr("nosuch"); }}'])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"ERROR: Could not resolve symbol: {prog}:nosuch" in r.stderr.splitlines()[0]
