"""usdt: through the command, on the conftest's USDT_APP: argument values of every kind, the
semaphore raised only while pybpf runs (in processes started before and after it), -p PID, and
nothing left behind after Ctrl-C, SIGTERM or the traced program crashing."""

import re
import shutil
import signal
import subprocess

import pytest

from e2e_helpers import INT3, NOP, READY, Running, unused_pid


@pytest.mark.kernel
def test_arguments_of_every_kind(usdt_app, app):
    """Registers of 8, 16, 32 and 64 bits signed and unsigned, a constant, memory at a register,
    at base + index * scale, a global (%rip-relative); two sites of one probe with their
    arguments in different places."""
    run = Running(["-e", READY + f'usdt:{usdt_app}:app:two {{ printf("two %d %d\\n", arg0, arg1); }} '
                   f'usdt:{usdt_app}:app:kinds {{ printf("kinds %d %d %d %d %u\\n", '
                   'arg0, arg1, arg2, arg3, arg4); } '
                   f'U:{usdt_app}:app:mem {{ printf("mem %d %d %d\\n", arg0, arg1, arg2); }} '
                   f'U:{usdt_app}:none {{ printf("none\\n"); }}'])
    run.wait_for("ready")
    a = app()
    a.tick(), a.tick()
    a.close()
    out, err, code = run.stop()
    assert code == 0, err
    lines = [line for line in out.splitlines() if line and not line.startswith(("Attaching", "ready"))]
    assert sorted(lines) == sorted([
        "kinds 0 -5000000000 -1 0 4000000000", "two 0 -5000000000", "two -5000000000 5",
        "mem 123456789012 10 7", "none",
        "kinds 1 -4999999999 -2 -1000 3999999999", "two 1 -4999999999", "two -4999999999 5",
        "mem 123456789012 20 7", "none"])


def site_offset(path: str, name: str) -> int:
    from pybpf import elfsym, usdt_notes
    (site,) = [s for s in usdt_notes.read_sites(path) if s.name == name]
    return elfsym.file_offset(path, site.pc)


@pytest.mark.kernel
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_semaphore_is_set_only_while_pybpf_runs(usdt_app, app, sig):
    """And nothing stays behind when pybpf stops: the semaphore is lowered, and the site's
    breakpoint (int3, 0xcc) is the nop (0x90) it was."""
    before = app()
    assert before.tick() == 0                     # no one tracing: the guarded probe is skipped
    site = site_offset(usdt_app, "guarded")
    assert before.code_byte(usdt_app, site) == NOP
    run = Running(["-e", READY + f'usdt:{usdt_app}:app:guarded {{ @[arg0] = count(); }}'])
    run.wait_for("ready")
    after = app()                                 # started while pybpf runs
    assert (before.tick(), after.tick(), after.tick()) == (1, 1, 1)
    assert before.code_byte(usdt_app, site) == after.code_byte(usdt_app, site) == INT3
    out, err, code = run.stop(sig)
    assert code == 0, err
    assert sorted(re.findall(r"^@\[(\d+)\]: (\d+)$", out, re.M)) == [("0", "1"), ("1", "2")]
    assert (before.tick(), after.tick()) == (0, 0)    # lowered again in both
    assert before.code_byte(usdt_app, site) == after.code_byte(usdt_app, site) == NOP
    assert app().tick() == 0


@pytest.mark.kernel
def test_pybpf_killed_leaves_nothing_either(usdt_app, app):
    """SIGKILL: no cleanup code runs, the kernel's closing of pybpf's fds is the cleanup."""
    traced = app()
    site = site_offset(usdt_app, "guarded")
    run = Running(["-e", READY + f'usdt:{usdt_app}:app:guarded {{ @ = count(); }}'])
    run.wait_for("ready")
    assert (traced.tick(), traced.code_byte(usdt_app, site)) == (1, INT3)
    run.stop(signal.SIGKILL)
    assert (traced.tick(), traced.code_byte(usdt_app, site)) == (0, NOP)


@pytest.mark.kernel
def test_pid_limits_the_probes_to_one_process(usdt_app, app):
    traced, other = app(), app()
    run = Running(["-p", str(traced.proc.pid), "-e",
                   READY + 'usdt:prog:app:guarded { @[pid] = count(); } '
                   'usdt:prog:app:two { @two[pid] = count(); }'])
    run.wait_for("ready")
    assert (traced.tick(), traced.tick(), other.tick()) == (1, 1, 0)   # only its semaphore raised
    out, err, code = run.stop()
    assert code == 0, err
    assert re.findall(r"^@\[(\d+)\]: (\d+)$", out, re.M) == [(str(traced.proc.pid), "2")]
    assert re.findall(r"^@two\[(\d+)\]: (\d+)$", out, re.M) == [(str(traced.proc.pid), "4")]


@pytest.mark.kernel
def test_a_pid_that_does_not_exist(usdt_app):
    pid = unused_pid()
    run = Running(["-p", str(pid), "-e", f"usdt:{usdt_app}:app:two {{ }}"])
    out, err, code = run.stop(None)
    assert code != 0 and f"ERROR: no process with pid {pid}" in err and "Traceback" not in err


@pytest.mark.kernel
def test_the_traced_program_crashing_leaves_pybpf_running(usdt_app, app):
    run = Running(["-e", READY + f'usdt:{usdt_app}:app:guarded {{ @ = count(); }}'])
    run.wait_for("ready")
    crashing = app()
    assert crashing.tick() == 1
    assert crashing.crash() == -signal.SIGSEGV
    survivor = app()
    assert survivor.tick() == 1
    out, err, code = run.stop()
    assert code == 0, err
    assert re.search(r"^@: 2$", out, re.M)
    assert survivor.tick() == 0


LIBRARY = r"""
#include <sys/sdt.h>
__attribute__((noinline)) int lib_call(int i) { DTRACE_PROBE1(lib, call, i * 2); return i; }
"""
LOADER = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *lib = dlopen(argv[1], RTLD_NOW);
    int (*call)(int) = lib ? (int (*)(int))dlsym(lib, "lib_call") : 0;
    char line[16];
    if (!call) return 1;
    for (int i = 0; fgets(line, sizeof line, stdin); i++) {
        printf("tick %d semaphore 0\n", call(i));           /* App.tick's line */
        fflush(stdout);
    }
    return 0;
}
"""


@pytest.mark.kernel
def test_pid_finds_a_shared_librarys_probes_by_its_name(compile_c, sdt_header, app, tmp_path):
    """-p PID with a library name: the library the process loaded (dlopen), found through
    /proc/PID/maps; another process using the same library is not traced."""
    library = tmp_path / "libpybpfusdt.so"
    shutil.copy(compile_c(LIBRARY, "-shared", "-fPIC"), library)
    loader = compile_c(LOADER)
    traced, other = app(loader, str(library)), app(loader, str(library))
    assert (traced.tick(), other.tick()) == (0, 0)                 # both have loaded it
    run = Running(["-p", str(traced.proc.pid), "-e",
                   READY + 'usdt:libpybpfusdt:lib:call { @[pid, arg0] = count(); }'])
    run.wait_for("ready")
    traced.tick(), other.tick(), traced.tick()
    out, err, code = run.stop()
    assert code == 0, err
    pid = str(traced.proc.pid)
    assert sorted(re.findall(r"^@\[(\d+), (\d+)\]: (\d+)$", out, re.M)) == [(pid, "2", "1"), (pid, "4", "1")]


@pytest.mark.kernel
def test_usdt_file_activation_raises_the_semaphore_in_every_process_of_the_file(usdt_app, app):
    """bpftrace 0.26's --usdt-file-activation: semaphores raised by file path, in processes started
    before and after pybpf, none named by -p (pybpf's way without the option too)."""
    before = app()
    assert before.tick() == 0
    run = Running(["--usdt-file-activation", "-e",
                   READY + f'usdt:{usdt_app}:app:guarded {{ @ = count(); }}'])
    run.wait_for("ready")
    after = app()
    assert (before.tick(), after.tick()) == (1, 1)
    out, err, code = run.stop()
    assert code == 0, err
    assert re.search(r"^@: 2$", out, re.M), out
    assert before.tick() == 0
