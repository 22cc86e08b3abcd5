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


ARGS_C = r"""
struct point { int x; long y; unsigned flags : 3; unsigned mode : 5; char name[8]; struct point *next; };
enum color { RED = 1, BLUE = -1 };
typedef unsigned long counter_t;
__attribute__((noinline)) int handle(int fd, const char *path, struct point *p, counter_t n,
                                     enum color c, unsigned char small)
{ __asm__ volatile(""); return fd + (int)n + p->next->x + path[0] + c + small; }
__attribute__((noinline)) int mixed(double scale, int a, struct point byval, long b)
{ __asm__ volatile(""); return a + (int)scale + byval.x + (int)b; }
__attribute__((noinline)) int many(long a1, long a2, long a3, long a4, long a5, long a6, long a7)
{ __asm__ volatile(""); return a1 + a7; }
int main(int argc, char **argv) {
    struct point q = {7, -8, 5, 17, "qq", 0}, p = {3, 40000000000L, 2, 9, "pt", &q};
    int s = 0;
    for (int i = 0; i < 3; i++)
        s += handle(i, argv[0], &p, 100 + i, BLUE, 250) + mixed(1.5, i, p, 9) + many(1, 2, 3, 4, 5, 6, 7);
    return s & 1;
}
"""


@pytest.fixture(scope="module")
def args_prog(compile_c):
    return compile_c(ARGS_C, "-g")


@pytest.mark.kernel
def test_dwarf_arguments_by_name(args_prog):
    """Integers, a string, a typedef, an enum, struct members through pointers (bitfields, a
    char array, a pointer followed), `args.` and `args->`; after a double and a struct passed
    by value on the stack, the next integer argument is in the register after `a`'s."""
    r = run_pybpf(["-c", args_prog, "-e",
                   f'uprobe:{args_prog}:handle {{ printf("%d %s %d %d %d %d %d %d %d %s %s %d\\n", '
                   'args.fd, str(args.path), args.p->x, args.p->y, args.p->flags, args.p->mode, '
                   'args.n, args.c, args->small, args.p->name, args.p->next->name, '
                   'args.p->next->y); } '
                   f'uprobe:{args_prog}:mixed {{ printf("a=%d b=%d\\n", args.a, args.b); }}'])
    assert r.returncode == 0, r.stderr
    assert re.findall(r"^\d+ \S+ .*$", r.stdout, re.M) == [
        f"{i} {args_prog} 3 40000000000 2 9 {100 + i} -1 250 pt qq -8" for i in range(3)]
    assert re.findall(r"^a=.*$", r.stdout, re.M) == [f"a={i} b=9" for i in range(3)]


@pytest.mark.parametrize("probe,message", [
    ("mixed { @ = args.scale; }", "args.scale of uprobe:{prog}:mixed: a floating-point argument, "
                                  "passed in an SSE register, which pybpf does not read"),
    ("mixed { @ = args.byval; }", "args.byval of uprobe:{prog}:mixed: passed by value on the "
                                  "stack (40 bytes), which pybpf does not read"),
    ("many { @ = args.a7; }", "args.a7 of uprobe:{prog}:many: passed on the stack (only the "
                              "first 6 are in registers)"),
    ("many { @ = args.nosuch; }", "uprobe:{prog}:many has no argument named 'nosuch' (its "
                                  "arguments: a1, a2, a3, a4, a5, a6)"),
    ("many+4 { @ = args.a1; }", "uprobe:{prog}:many+4: args are a function's, at its entry: not "
                                "at an offset or an address"),
])
def test_dwarf_arguments_refused(args_prog, probe, message):
    r = run_pybpf(["-e", f"uprobe:{args_prog}:{probe}"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"ERROR: {message.format(prog=args_prog)}" in r.stderr.splitlines()[0]


def test_args_of_a_binary_without_dwarf(compile_c):
    prog = compile_c(GLOBALS)
    r = run_pybpf(["-e", f"uprobe:{prog}:report {{ @ = args.i; }}"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"{prog} has no DWARF debug info (build it with -g) to type args from" in r.stderr


def test_listing_shows_dwarf_arguments(args_prog):
    r = run_pybpf(["-lv", f"uprobe:{args_prog}:m*"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"uprobe:{args_prog}:main", "    int argc", "    char ** argv",
        f"uprobe:{args_prog}:many", *(f"    long a{i}" for i in range(1, 8)),
        f"uprobe:{args_prog}:mixed", "    double scale", "    int a", "    struct point byval",
        "    long b"]


def test_a_wildcard_types_the_functions_its_dwarf_has(args_prog):
    """crt's functions (_start, ...) have no DWARF: in a wildcard they have no arguments, and
    reading one there is the usual error, naming the function."""
    r = run_pybpf(["-e", f"uprobe:{args_prog}:* {{ @ = args.a1; }}"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert re.search(rf"ERROR: uprobe:{re.escape(args_prog)}:\w+ has no argument named 'a1'",
                     r.stderr.splitlines()[0]), r.stderr
    ok = run_pybpf(["--verify-only", "-e", f"uprobe:{args_prog}:ma* {{ @ = args.argc; }}"])
    assert f"uprobe:{args_prog}:many has no argument named 'argc'" in ok.stderr   # main has it
