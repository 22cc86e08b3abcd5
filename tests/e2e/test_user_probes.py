"""User-space probes and sampling through the command: uprobe/uretprobe on a library function,
wildcards through uprobe_multi links, nothing left behind when pybpf stops, and profile sampling
on every CPU."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from e2e_helpers import INT3, READY, Running, named_child, run_pybpf, trace, unused_pid

CALL_GETPID_N_TIMES = ('libc = ctypes.CDLL("libc.so.6")\n'
                       "for _ in range(int(sys.argv[2])):\n    libc.getpid()\n")


@pytest.mark.kernel
def test_uprobe_and_uretprobe_on_libc():
    out = trace(["-e", READY + 'uprobe:libc:getpid /comm == "pybpfuprobe"/ { @[func] = count(); } '
                 'uretprobe:libc:getpid /comm == "pybpfuprobe"/ { @pids[retval] = count(); }'],
                named_child("pybpfuprobe", CALL_GETPID_N_TIMES, 40))
    calls = int(re.search(r"^@\[getpid\]: (\d+)$", out, re.M)[1])
    assert calls >= 40                      # ctypes calls, plus whatever the interpreter made
    pids = dict(re.findall(r"^@pids\[(\d+)\]: (\d+)$", out, re.M))
    assert len(pids) == 1 and int(next(iter(pids.values()))) == calls   # one pid, every return


@pytest.mark.kernel
def test_profile_samples_every_cpu_it_runs_on():
    r = run_pybpf(["-e", "profile:hz:199 { @samples = count(); } interval:ms:500 { exit(); }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Attaching 2 probes...")
    assert int(re.search(r"^@samples: (\d+)$", r.stdout, re.M)[1]) > 10


def test_listing_library_functions():
    r = run_pybpf(["-l", "uprobe:libc:getpi*"])
    assert r.returncode == 0, r.stderr
    assert any(line.endswith(":getpid") for line in r.stdout.splitlines())


@pytest.mark.kernel
def test_cpp_functions_by_demangled_name_and_wildcard(cpp_app):
    run = Running(["-e", READY + f'uprobe:{cpp_app}:ns::add* {{ @[func] = count(); }} '
                   f'uprobe:{cpp_app}:ns::Counter::bump(long) {{ @bumped = sum(arg1); }}'])
    run.wait_for("ready")
    assert subprocess.run([cpp_app, "x", "y"], timeout=30).returncode == 1     # 9 rounds, sum 45
    out, err, code = run.stop()
    assert code == 0, err
    assert "Attaching 4 probes..." in out
    assert re.findall(r"^@\[(.*)\]: (\d+)$", out, re.M) == [("ns::add(double, double)", "9"),
                                                            ("ns::add(int, int)", "9")]
    assert re.search(r"^@bumped: 45$", out, re.M)


STEPS = r"""
__asm__(".text\n.globl step\n.type step, @function\nstep:\n"
        "  nop\n  lea 1(%rdi), %eax\n  ret\n.size step, .-step\n");
int step(int x);
int main(int argc, char **argv) { int s = 0; for (int i = 0; i < argc * 4; i++) s = step(s); return s; }
"""


@pytest.mark.kernel
def test_function_plus_offset_and_address(compile_c):
    """step's first instruction is a one-byte nop, so step+1 is the next one; the address is
    step's own."""
    from pybpf import elfsym
    prog = compile_c(STEPS, "-no-pie")
    address = hex(elfsym.function_symbols(prog)["step"][0])
    run = Running(["-e", READY + f'u:{prog}:step+1 {{ @[func, arg0] = count(); }} '
                   f'u:{prog}:{address} {{ @addr[func] = count(); }}'])
    run.wait_for("ready")
    assert subprocess.run([prog, "x"], timeout=30).returncode == 8
    out, err, code = run.stop()
    assert code == 0, err
    assert re.findall(r"^@\[step, (\d+)\]: 1$", out, re.M) == [str(n) for n in range(8)]
    assert re.search(rf"^@addr\[{address}\]: 8$", out, re.M)


LIBRARY = r"""
__attribute__((noinline)) int lib_twice(int x) { __asm__ volatile(""); return 2 * x; }
__attribute__((noinline)) int lib_plus(int x) { __asm__ volatile(""); return x + 1; }
int lib_call(int i) { return lib_plus(lib_twice(i)); }
"""
LINKED = r"""
int lib_call(int i);
int main(int argc, char **argv) { int s = 0; for (int i = 0; i < argc * 5; i++) s += lib_call(i); return s & 1; }
"""


@pytest.mark.kernel
def test_every_function_of_a_library(compile_c, tmp_path):
    """uprobe:LIB:* attaches to every function of the library, once per address."""
    from pybpf import elfsym
    library = str(tmp_path / "libpybpfall.so")
    shutil.copy(compile_c(LIBRARY, "-shared", "-fPIC"), library)
    prog = compile_c(LINKED, "-Wl,--no-as-needed", library)     # before prog.c: keep it needed
    functions = len({vaddr for vaddr, _ in elfsym.function_symbols(library).values()})
    run = Running(["-e", READY + f'uprobe:{library}:* /comm == "prog"/ {{ @[func] = count(); }}'])
    run.wait_for("ready")
    subprocess.run([prog], timeout=30)
    out, err, code = run.stop()
    assert code == 0, err
    assert f"Attaching {functions + 1} probes..." in out                  # + BEGIN
    counts = dict(re.findall(r"^@\[(lib_\w+)\]: (\d+)$", out, re.M))
    assert counts == {"lib_call": "5", "lib_twice": "5", "lib_plus": "5"}


@pytest.mark.kernel
@pytest.mark.parametrize("target,message", [
    ("/no/such/binary:main", "binary not found: /no/such/binary"),
    ("{prog}:nosuch", "no function 'nosuch' in {prog}"),
    ("{prog}:step+100", "offset 100 is outside function 'step' in {prog}"),
    ("{prog}:0x10", "address 0x10 is not inside any function of {prog}"),
])
def test_errors_are_one_line(compile_c, target, message):
    prog = compile_c(STEPS)
    r = run_pybpf(["-e", f"uprobe:{target.format(prog=prog)} {{ }}"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert f"ERROR: {message.format(prog=prog)}" in r.stderr.splitlines()[0]


@pytest.mark.kernel
def test_a_pid_that_does_not_exist():
    pid = unused_pid()
    r = run_pybpf(["-p", str(pid), "-e", "uprobe:libc:getpid { }"])
    assert r.returncode != 0 and f"ERROR: no process with pid {pid}" in r.stderr.splitlines()[0]


WAIT_THEN_CALL_GETPID = ('libc = ctypes.CDLL("libc.so.6")\nsys.stdin.readline()\n'
                         "for _ in range(int(sys.argv[2])):\n    libc.getpid()\n")


@pytest.mark.kernel
def test_pid_limits_a_uprobe_to_one_process():
    """-p PID: libc found among the process's mappings, the uprobe fires in it only."""
    traced, other = (subprocess.Popen(named_child("pybpfpid", WAIT_THEN_CALL_GETPID, 30),
                                      stdin=subprocess.PIPE) for _ in range(2))
    try:
        run = Running(["-p", str(traced.pid), "-e",
                       READY + 'uprobe:libc.so.6:getpid /comm == "pybpfpid"/ { @[pid] = count(); }'])
        run.wait_for("ready")
        for child in (traced, other):
            child.communicate(b"go\n", timeout=30)
        out, err, code = run.stop(sig=None)     # the traced process's exit ends the trace (-p)
    finally:
        for child in (traced, other):
            child.kill()
            child.wait()
    assert code == 0, err
    counts = dict(re.findall(r"^@\[(\d+)\]: (\d+)$", out, re.M))
    assert list(counts) == [str(traced.pid)] and int(counts[str(traced.pid)]) >= 30


def link_types(pid: int) -> list[str]:
    """The bpf link types process `pid` holds (its fds' fdinfo)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                found += re.findall(r"^link_type:\s*(\S+)", f.read(), re.M)
        except OSError:
            continue
    return found


@pytest.mark.kernel
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_uprobes_leave_nothing_behind(usdt_app, app, sig):
    """A wildcard over a program's functions (one uprobe_multi link) and a uretprobe (a perf
    event): breakpoints (int3) are in a process started before pybpf while it runs, and none is
    left after Ctrl-C, SIGTERM or SIGKILL; a traced process that crashes meanwhile changes
    nothing."""
    from pybpf import elfsym
    symbols = elfsym.function_symbols(usdt_app)
    offsets = {n: elfsym.file_offset(usdt_app, symbols[n][0]) for n in ("work", "guarded")}
    traced = app()
    traced.tick()                                   # started: its code is mapped
    original = {n: traced.code_byte(usdt_app, off) for n, off in offsets.items()}
    run = Running(["-e", READY + f'uprobe:{usdt_app}:* {{ @[probe] = count(); }} '
                   f'uretprobe:{usdt_app}:work {{ @returns = count(); }}'])
    run.wait_for("ready")
    assert "uprobe_multi" in link_types(run.proc.pid)
    traced.tick()
    crashing = app()
    crashing.tick()
    assert crashing.crash() == -signal.SIGSEGV
    assert {n: traced.code_byte(usdt_app, off) for n, off in offsets.items()} == \
        {"work": INT3, "guarded": INT3}
    out, err, code = run.stop(sig)
    if sig != signal.SIGKILL:
        assert code == 0, err
        assert re.search(rf"^@\[uprobe:{re.escape(usdt_app)}:work\]: 2$", out, re.M), out
        assert re.search(r"^@returns: 2$", out, re.M), out
    assert {n: traced.code_byte(usdt_app, off) for n, off in offsets.items()} == original
    later = app()
    later.tick()
    assert {n: later.code_byte(usdt_app, off) for n, off in offsets.items()} == original


LOCKED = r"""
__asm__(".text\n.globl locked\n.type locked, @function\nlocked:\n"
        "  lock incl (%rdi)\n  ret\n.size locked, .-locked\n");
__attribute__((noinline)) int lib_plain(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) int lib_other(int x) { __asm__ volatile(""); return x * 3; }
"""
CALLS_LOCKED = r"""
#include <stdio.h>
void locked(int *p); int lib_plain(int x); int lib_other(int x);
int main(void) {
    char line[8]; int n = 0;
    if (!fgets(line, sizeof line, stdin)) return 1;        /* the library is mapped meanwhile */
    for (int i = 0; i < 4; i++) { locked(&n); n = lib_plain(n) + lib_other(i); }
    return 0;
}
"""


@pytest.mark.kernel
def test_a_wildcard_skips_what_the_kernel_cannot_probe(compile_c, tmp_path):
    """A function whose first instruction has a lock prefix cannot be uprobed (x86): in a
    wildcard, it is left out with a warning and the others attach; alone, it is an error."""
    library = str(tmp_path / "libpybpflocked.so")
    shutil.copy(compile_c(LOCKED, "-shared", "-fPIC"), library)
    prog = compile_c(CALLS_LOCKED, "-Wl,--no-as-needed", library)
    # the kernel reads a function's instruction when it puts a uprobe in a process that maps it
    waiting = subprocess.Popen([prog], stdin=subprocess.PIPE)
    try:
        while library not in open(f"/proc/{waiting.pid}/maps").read():
            time.sleep(0.01)
        alone = run_pybpf(["-e", f"uprobe:{library}:locked {{ }}"])
        assert alone.returncode != 0 and "cannot probe the instruction there" in alone.stderr
        run = Running(["-e", READY + f'uprobe:{library}:* {{ @[probe] = count(); }}'])
        run.wait_for("ready")
        waiting.communicate(b"go\n", timeout=30)
        out, err, code = run.stop()
    finally:
        waiting.kill()
        waiting.wait()
    assert code == 0, err
    assert f"WARNING: uprobe:{library}:locked: the kernel cannot probe the instruction there: " \
           "skipped" in err
    counts = dict(re.findall(r"^@\[uprobe:.*:(\w+)\]: (\d+)$", out, re.M))
    assert (counts["lib_plain"], counts["lib_other"], "locked" in counts) == ("4", "4", False)


@pytest.mark.kernel
def test_no_feature_uprobe_multi_attaches_each_uprobe_by_itself(usdt_app, app):
    """--no-feature uprobe_multi (bpftrace 0.26): a wildcard's uprobes attach one by one, as on a
    kernel without uprobe_multi links, and count the same calls; an unknown name is bpftrace's error."""
    traced = app()
    traced.tick()
    run = Running(["--no-feature", "uprobe_multi", "-e",
                   READY + f'uprobe:{usdt_app}:* {{ @[probe] = count(); }}'])
    run.wait_for("ready")
    perf_events = [fd for fd in os.listdir(f"/proc/{run.proc.pid}/fd")
                   if os.readlink(f"/proc/{run.proc.pid}/fd/{fd}") == "anon_inode:[perf_event]"]
    assert "uprobe_multi" not in link_types(run.proc.pid) and len(perf_events) >= 2, perf_events
    traced.tick()
    traced.tick()
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0, err
    assert re.search(rf"^@\[uprobe:{re.escape(usdt_app)}:work\]: 2$", out, re.M), out
    r = run_pybpf(["--no-feature", "uprobe_multi,fentry", "-e", "BEGIN { exit(); }"])
    assert (r.returncode, r.stderr) == (1, "ERROR: USAGE: --no-feature can only have values "
                                           "'kprobe_multi,kprobe_session,uprobe_multi'.\n")
