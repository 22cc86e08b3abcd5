"""Tests marked `kernel` load BPF programs: they skip, with the reason, without root or bpf(2).
The compile_c fixture builds the C programs that user-space probe tests trace."""

import functools
import os
import shutil
import subprocess

import pytest


@functools.cache
def kernel_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    from pybpf.program import MapDef
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import create_map
    from pybpf.uapi.bpf import BpfMapType
    try:
        os.close(create_map("probe", MapDef(BpfMapType.ARRAY, 4, 8, 1)))
    except BpfError as e:
        return f"bpf(2) is not usable here: {e}"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") and kernel_unavailable():
        pytest.skip(kernel_unavailable())


@pytest.fixture
def bpf_run_stats():
    """The kernel counts every program's run time and runs while an fd of BPF_ENABLE_STATS is
    open: on for one test, leaving kernel.bpf_stats_enabled (the machine's setting) alone."""
    import ctypes

    from pybpf.runtime.syscall import bpf
    from pybpf.uapi.bpf import BpfCmd

    class EnableStatsAttr(ctypes.Structure):
        _fields_ = [("type", ctypes.c_uint32)]            # BPF_STATS_RUN_TIME = 0

    fd = bpf(BpfCmd.ENABLE_STATS, EnableStatsAttr(0))
    yield
    os.close(fd)


@pytest.fixture(scope="session")
def compile_c(tmp_path_factory):
    """compile_c(source, *flags) -> the path of the program gcc built from it (skips without a C
    compiler): the tests' own user-space targets."""
    cc = shutil.which("cc") or shutil.which("gcc")

    def build(source: str, *flags: str) -> str:
        if not cc:
            pytest.skip("no C compiler")
        folder = tmp_path_factory.mktemp("cc")
        (folder / "prog.c").write_text(source)
        out = str(folder / "prog")
        subprocess.run([cc, "-O1", "-g0", *flags, "-o", out, str(folder / "prog.c")], check=True)
        return out
    return build



@pytest.fixture(scope="session")
def strip_to_minidebuginfo():
    """strip_to_minidebuginfo(path): the binary stripped of every symbol table, its symbols kept
    in MiniDebugInfo as Fedora ships binaries: an xz-compressed ELF holding .symtab, in section
    .gnu_debugdata (skips without binutils)."""
    import lzma

    def strip(path: str) -> None:
        if not (shutil.which("objcopy") and shutil.which("strip") and shutil.which("nm")):
            pytest.skip("no objcopy/strip/nm (binutils)")
        symbols = path + ".debug"
        subprocess.run(["objcopy", "--only-keep-debug", path, symbols], check=True)
        with open(symbols, "rb") as f, open(symbols + ".xz", "wb") as xz:
            xz.write(lzma.compress(f.read(), format=lzma.FORMAT_XZ))
        subprocess.run(["strip", "--strip-all", path], check=True)
        subprocess.run(["objcopy", "--add-section", f".gnu_debugdata={symbols}.xz", path], check=True)
        listed = subprocess.run(["nm", path], capture_output=True, text=True)
        assert "no symbols" in listed.stderr, listed.stdout     # only MiniDebugInfo names them
    return strip


@pytest.fixture(scope="session")
def _package_links():
    """A folder any user can read, laid out like the installed package, whose entries link to the
    folders pybpf is imported from (an editable install maps pybpf.backend and pybpf.runtime from
    other folders through a finder in site-packages). In the shared temp folder, as pytest's own
    base folder is root's alone; removed at the end."""
    import tempfile

    import pybpf
    import pybpf.backend
    import pybpf.grammar
    import pybpf.runtime

    top = tempfile.mkdtemp(prefix="pybpf-links-")
    os.chmod(top, 0o755)
    package = os.path.join(top, "pybpf")
    os.mkdir(package, 0o755)
    source = os.path.dirname(pybpf.__file__)
    for name in os.listdir(source):
        os.symlink(os.path.join(source, name), os.path.join(package, name))
    for module in (pybpf.backend, pybpf.grammar, pybpf.runtime):
        link = os.path.join(package, module.__name__.rpartition(".")[2])
        if not os.path.lexists(link):
            os.symlink(os.path.dirname(module.__file__), link)
    yield top
    shutil.rmtree(top)


def _readable_by_anyone(path: str) -> bool:
    """Every folder from / to path can be searched by others, and path read."""
    path = os.path.realpath(path)
    while path != "/":
        if not os.stat(path).st_mode & 0o005:
            return False
        path = os.path.dirname(path)
    return True


@pytest.fixture
def unprivileged_env(_package_links):
    """unprivileged_env(env) -> env under which a process that dropped root (setpriv --reuid) still
    imports this pybpf: the interpreter's site-packages may be out of its reach (pyenv under /root,
    an editable install's finder), so PYTHONPATH names a folder of links to the package's sources.
    Skips where the sources themselves are out of reach of other users."""
    import pybpf
    import pybpf.backend
    import pybpf.runtime

    def make(env: dict | None = None) -> dict:
        folders = {os.path.dirname(m.__file__) for m in (pybpf, pybpf.backend, pybpf.runtime)}
        if not all(_readable_by_anyone(f) for f in folders):
            pytest.skip("pybpf's sources are not readable by other users here")
        return {**(os.environ if env is None else env), "PYTHONPATH": _package_links}
    return make


SDT_HEADERS = ("/usr/include/sys/sdt.h", "/usr/include/x86_64-linux-gnu/sys/sdt.h")

# A program with USDT probes of every argument kind. Each input line is a command: `k` runs
# work() once and prints `tick I semaphore S`, `c` crashes (SIGSEGV), EOF exits.
USDT_APP = r"""
#include <sys/sdt.h>
#include <signal.h>
#include <stdio.h>
struct s { long a; int b[4]; };
volatile long counter = 7;
__attribute__((noinline)) void work(int i, long big, struct s *p) {
    signed char c = -i - 1; short h = -1000 * i; unsigned u = 4000000000u - i;
    DTRACE_PROBE5(app, kinds, i, big, c, h, u);
    DTRACE_PROBE2(app, two, i, big);
    DTRACE_PROBE2(app, two, big, 5);                /* a second site: arguments elsewhere */
    DTRACE_PROBE3(app, mem, p->a, p->b[i & 3], counter);
    DTRACE_PROBE(other, none);
}
/* Only app:guarded has a semaphore: sdt.h chooses for every probe expanded after this point. */
#undef _SDT_SEMAPHORE
#define _SDT_SEMAPHORE(p, n) _SDT_ASM_1(_SDT_ASM_ADDR p##_##n##_semaphore)
unsigned short app_guarded_semaphore __attribute__((section(".probes")));
__attribute__((noinline)) void guarded(int i) {
    if (app_guarded_semaphore) DTRACE_PROBE1(app, guarded, i);
}
int main(void) {
    struct s x = {123456789012L, {10, 20, 30, 40}};
    char line[16];
    for (int i = 0; fgets(line, sizeof line, stdin); i++) {
        if (line[0] == 'c') raise(SIGSEGV);
        work(i, -5000000000L + i, &x);
        guarded(i);
        printf("tick %d semaphore %u\n", i, app_guarded_semaphore);
        fflush(stdout);
    }
    return 0;
}
"""


@pytest.fixture(scope="session")
def sdt_header():
    """Skips the test where <sys/sdt.h>, which USDT test programs include, is missing."""
    if not any(map(os.path.exists, SDT_HEADERS)):
        pytest.skip("<sys/sdt.h> is missing (Debian: systemtap-sdt-dev)")


@pytest.fixture(scope="session")
def usdt_app(compile_c, sdt_header):
    """The path of USDT_APP built."""
    return compile_c(USDT_APP)


# A C++ program: an overloaded function in a namespace and a member function. With N arguments it
# runs its loop 3 * (N + 1) times.
CPP_APP = r"""
namespace ns {
__attribute__((noinline)) int add(int a, int b) { __asm__ volatile(""); return a + b; }
__attribute__((noinline)) double add(double a, double b) { __asm__ volatile(""); return a + b; }
struct Counter {
    long n;
    __attribute__((noinline)) void bump(long by) { __asm__ volatile(""); n += by; }
};
}
int main(int argc, char **argv) {
    ns::Counter c{0};
    for (int i = 0; i < argc * 3; i++) { c.bump(ns::add(i, 1)); ns::add(1.0 * i, 2.0); }
    return (int)c.n & 1;
}
"""


@pytest.fixture(scope="session")
def cpp_app(compile_c):
    """The path of CPP_APP built (skips without c++filt, which pybpf demangles with)."""
    if not shutil.which("c++filt"):
        pytest.skip("no c++filt (binutils): C++ names are not demangled")
    return compile_c(CPP_APP, "-x", "c++", "-fno-exceptions")
