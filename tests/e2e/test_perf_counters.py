"""software:, hardware: and watchpoint: probes through the command: page faults counted by the program
that made them, cpu-clock samples, a machine without a PMU refusing hardware events in one line, a
watchpoint firing on each write of a program's variable."""

import os
import re
import subprocess
import time

import pytest

from e2e_helpers import READY, Running, run_pybpf, trace

PAGES = 300
# Touches PAGES fresh pages under its own name, then leaves at once: its faults are those pages.
FAULTS_C = r"""
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long page = sysconf(_SC_PAGESIZE), n = %d;
    volatile char *area = mmap(0, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise((void *)area, n * page, MADV_NOHUGEPAGE);
    prctl(PR_SET_NAME, "pybpffaults", 0, 0, 0);
    for (long i = 0; i < n; i++)
        area[i * page] = 1;
    syscall(SYS_exit_group, 0);
}
""" % PAGES


@pytest.mark.kernel
def test_page_faults_by_the_program_that_made_them(compile_c):
    faulter = compile_c(FAULTS_C)
    out = trace(["-e", READY + "software:page-faults:1 { @[comm] = count(); }"], [faulter])
    faults = int(re.search(r"^@\[pybpffaults\]: (\d+)$", out, re.M)[1])
    assert faults == PAGES          # one per fresh page; its code and libc were faulted in before


@pytest.mark.kernel
def test_cpu_clock_samples():
    r = run_pybpf(["-e", "software:cpu-clock:1000000 { @samples = count(); } interval:ms:300 { exit(); }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Attaching 2 probes...")
    # a sample per ms of clock on every CPU, busy or idle: about 300 per CPU
    samples = int(re.search(r"^@samples: (\d+)$", r.stdout, re.M)[1])
    assert 100 * os.cpu_count() <= samples <= 400 * os.cpu_count()


@pytest.mark.kernel
@pytest.mark.skipif(os.path.exists("/sys/bus/event_source/devices/cpu"),
                    reason="this machine has hardware performance counters")
def test_hardware_without_a_pmu_is_one_line():
    r = run_pybpf(["-e", "hardware:cycles:1000000 { @[comm] = count(); }"])
    assert r.returncode == 1
    assert r.stderr == ("ERROR: hardware:cycles:1000000: this machine has no hardware performance counters "
                        "(perf_event_open: ENOENT)\n")


@pytest.mark.kernel
def test_hardware_program_passes_the_verifier():
    r = run_pybpf(["--verify-only", "-e", "hardware:cycles:1000000 { @[comm] = count(); }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1 program passed the verifier; 1 attach point (none attached)\n"


def test_listing():
    r = run_pybpf(["-l", "software:*"])
    assert r.returncode == 0 and "software:page-faults:\n" in r.stdout and len(r.stdout.splitlines()) == 11
    r = run_pybpf(["-l", "h:*"])
    assert r.returncode == 0 and "hardware:cpu-cycles:\n" in r.stdout and len(r.stdout.splitlines()) == 10


WRITES = 25
# Prints the address of its variable, waits for a line, writes the variable 3 times, waits for a
# line again, then writes it WRITES times.
WRITER_C = r"""
#include <stdio.h>
volatile long watched;
int main(void) {
    char line[8];
    printf("%%p\n", (void *)&watched);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 1;
    for (int i = 0; i < 3; i++)
        watched = i;
    if (!fgets(line, sizeof line, stdin))
        return 1;
    for (int i = 0; i < %d; i++)
        watched = i;
    return 0;
}
""" % WRITES


@pytest.mark.kernel
def test_watchpoint_fires_on_each_write(compile_c):
    writer = subprocess.Popen([compile_c(WRITER_C)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        address = writer.stdout.readline().strip()
        run = Running(["-p", str(writer.pid), "-e",
                       READY + f"watchpoint:{address}:8:w {{ @writes[comm] = count(); }}"])
        run.wait_for("ready")
        writer.stdin.write("go\ngo\n")
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()
    out, err, code = run.stop(sig=None)     # the watched process's exit ends the trace (-p)
    assert code == 0, err
    assert re.search(r"^@writes\[prog\]: (\d+)$", out, re.M)[1] == str(3 + WRITES)


def test_watchpoint_needs_a_process():
    r = run_pybpf(["-e", "watchpoint:0x1000:8:w { @ = count(); }"])
    assert r.returncode == 1
    assert "ERROR: watchpoint probes watch one process: give its id with -p PID" in r.stderr


@pytest.mark.kernel
def test_unwatch_detaches_the_watchpoint_on_its_address(compile_c):
    # bpftrace 0.26: unwatch(addr) removes the watchpoint on addr (in user space, when its
    # record is read): the writes after it are not seen.
    writer = subprocess.Popen([compile_c(WRITER_C)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        address = writer.stdout.readline().strip()
        run = Running(["-p", str(writer.pid), "-e", READY + f"watchpoint:{address}:8:w {{ @writes++; "
                       f'if (@writes == 3) {{ printf("unwatching\\n"); unwatch({address}); }} }}'])
        run.wait_for("ready")
        writer.stdin.write("go\n")
        writer.stdin.flush()
        run.wait_for("unwatching")
        time.sleep(0.5)         # the unwatch record follows the printf's: let it be read
        writer.stdin.write("go\n")
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()
    out, err, code = run.stop(sig=None)
    assert code == 0, err
    assert re.search(r"^@writes: (\d+)$", out, re.M)[1] == "3"
