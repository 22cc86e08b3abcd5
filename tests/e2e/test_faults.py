"""Faults the real `pybpf` command reports in one clear way: lost events (exact count), a full map
(warned once, by name), bad sizes, a verifier rejection (the probe named, the last lines, not the
log), no privileges, and it writes nothing outside its cache directory and the -o file."""

import os
import re
import shutil
import subprocess
import sys

import pytest

PYBPF = [sys.executable, "-m", "pybpf.cli"]


def run(*args, timeout=30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(PYBPF + list(args), capture_output=True, text=True, timeout=timeout, **kwargs)


# Lost events -----------------------------------------------------------------------------------
# BEGIN runs synchronously (BPF_PROG_TEST_RUN), so nothing drains the ring buffer while it writes.
# Each printf("%d %d\n") record: 8 bytes of ring-buffer header + 8 of ours + 2 slots of 8 = 32 bytes.
# The kernel refuses a record once producer - consumer would exceed size - 1, so a 4096-byte buffer
# takes 4095 // 32 = 127 of them; "ready" (16 bytes) still fits in the 32 bytes left.
PRODUCED, RECORD, RINGBUF = 300, 32, 4096
FIT = (RINGBUF - 1) // RECORD
LOSSY = (r'BEGIN { $i = 0; while ($i < %d) { printf("%%d %%d\n", $i, 7); $i++; } printf("ready\n"); }'
         r' tracepoint:syscalls:sys_enter_getppid /pid == $1/ { exit(); }') % PRODUCED


@pytest.mark.kernel
def test_ring_buffer_overflow_reports_the_exact_number_of_lost_events():
    p = subprocess.Popen(PYBPF + ["--ringbuf-size", str(RINGBUF), "-e", LOSSY, str(os.getpid())],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "Attaching 2 probes...\n"
        delivered = []
        while (line := p.stdout.readline()) != "ready\n":
            assert line, p.stderr.read()
            delivered.append(line)
        os.getppid()                       # exit(), now that the buffer has been drained
        rest, err = p.communicate(timeout=20)
    finally:
        p.kill()
    assert (p.returncode, err) == (0, "")
    # At least what fits arrives, in order; the drain thread may empty the ring while BEGIN
    # still writes, so more can. Every record that did not arrive is reported, exactly.
    assert len(delivered) >= FIT
    numbers = [int(line.split()[0]) for line in delivered]
    assert numbers[:FIT] == list(range(FIT)) and numbers == sorted(set(numbers))
    lost = int(re.fullmatch(r"\n\nLost (\d+) events\n", rest).group(1))
    assert lost == PRODUCED - len(delivered)
    assert len(delivered) + lost == PRODUCED


@pytest.mark.kernel
def test_a_big_enough_buffer_loses_nothing():
    done = run("--ringbuf-size", "64K", "-e", r'BEGIN { $i = 0; while ($i < 300) { printf("%d %d\n", $i, 7); $i++; } exit(); }')
    assert done.returncode == 0 and "Lost" not in done.stdout
    assert done.stdout.count(" 7\n") == 300


@pytest.mark.parametrize("size", ["1000", "4097", "2048", "12288", "2G", "lots"])
def test_bad_ring_buffer_sizes_are_refused_clearly(size):
    done = run("--ringbuf-size", size, "-e", "BEGIN { exit(); }")
    assert done.returncode == 2
    assert "argument --ringbuf-size:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("entries", ["0", "-3", "x", str(1 << 30)])
def test_bad_map_entries_are_refused_clearly(entries):
    done = run("--map-entries", entries, "-e", "BEGIN { exit(); }")
    assert done.returncode == 2
    assert "argument --map-entries:" in done.stderr and "Traceback" not in done.stderr


# A full map ------------------------------------------------------------------------------------

@pytest.mark.kernel
def test_a_full_map_drops_the_new_keys_only_and_says_so_at_exit():
    done = run("--map-entries", "4", "--no-warnings", "-e",
               r'BEGIN { $i = 0; while ($i < 10) { @c[$i] = count(); @v[$i] = $i; $i++; } '
               r'$i = 0; while ($i < 10) { @c[$i] = count(); $i++; } @ok[1] = 1; exit(); }')
    assert done.returncode == 0 and done.stderr == "", done      # the warnings: test_helper_errors.py
    done = run("--map-entries", "4", "-e",
               r'BEGIN { $i = 0; while ($i < 10) { @c[$i] = count(); @v[$i] = $i; $i++; } '
               r'$i = 0; while ($i < 10) { @c[$i] = count(); $i++; } @ok[1] = 1; exit(); }')
    assert done.returncode == 0
    assert done.stderr.splitlines()[-1] == \
        "WARNING: 18 helper calls failed: map_update_elem 18 (map full: @c 12, @v 6)"
    assert done.stdout.count("@c[") == 4 and done.stdout.count("@v[") == 4 and "@ok[1]: 1" in done.stdout
    assert "@c[0]: 2" in done.stdout               # the keys that got in keep counting


# The verifier ----------------------------------------------------------------------------------

@pytest.mark.kernel
def test_a_verifier_rejection_names_the_probe_and_shows_the_last_lines():
    program = "tracepoint:syscalls:sys_enter_openat { $i = 0; while ($i >= 0) { $i++; } }"
    done = run("--verify-only", "-e", program)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    # on the statement the failing instruction came from (the object's line info)
    assert lines[0] == ("stdin:1:48-73: ERROR: the kernel's verifier rejected the program for "
                        "tracepoint:syscalls:sys_enter_openat")
    assert lines[2] == " " * 47 + "~" * 25
    assert "BPF program is too large" in done.stderr and "hint: a loop the verifier could not bound" in done.stderr
    assert lines[-1] == "(run with -v for the whole verifier log)" and len(lines) <= 10
    verbose = run("-v", "--verify-only", "-e", program)
    assert len(verbose.stderr.splitlines()) > 100          # the whole log on request


# Privilege and writes --------------------------------------------------------------------------

@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_without_privileges_one_clear_line(tmp_path):
    # Still uid 0 (so the interpreter under /root stays readable), but with no capabilities at all:
    # the kernel refuses bpf(2) exactly as for an ordinary user.
    done = subprocess.run(["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"]
                          + PYBPF + ["-e", "BEGIN { printf(\"hi\\n\"); exit(); }"],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert done.returncode == 1
    assert done.stderr == ("ERROR: pybpf needs root, or the CAP_BPF and CAP_PERFMON capabilities, to load "
                           "BPF programs; this process has neither (run it with sudo)\n")


WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")


@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_writes_only_to_the_cache_and_the_named_output(tmp_path):
    cache, out, trace = tmp_path / "cache", tmp_path / "out.txt", tmp_path / "trace"
    program = 'tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); } BEGIN { printf("hi\\n"); exit(); }'
    done = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e",
                           "trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,"
                           "unlink,unlinkat,truncate,link,symlink"] + PYBPF + ["--no-cache", "-o", str(out), "-e", program],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("Attaching 2 probes...\nhi\n")
    writes = []
    for line in trace.read_text().splitlines():
        call = line.split(None, 1)[-1]
        if call.startswith(("open", "creat")) and not (WRITE_FLAGS.search(call) or call.startswith("creat")):
            continue                       # a read-only open
        if "= -1 " in call:
            continue                       # refused: nothing written
        paths = re.findall(r'"([^"]*)"', call)
        writes += [p for p in paths if p.startswith("/")]
    allowed = (str(cache), str(out), "/dev/null", "/sys/kernel/tracing")     # cache: $XDG_CACHE_HOME, made if missing
    assert writes and all(w.startswith(allowed) for w in writes), \
        [w for w in writes if not w.startswith(allowed)]


@pytest.mark.kernel
def test_exit_ends_the_run_even_when_its_record_is_lost():
    # 400 records into a 4 KiB ring from BEGIN: the exit record finds the ring full, but exit()
    # also sets a flag in the kernel that the session reads
    done = run("--ringbuf-size", "4096", "-e",
               r'BEGIN { $i = 0; while ($i < 400) { printf("%d\n", $i); $i++; } exit(); }')
    assert done.returncode == 0
    assert re.search(r"^Lost \d+ events$", done.stdout, re.M)
