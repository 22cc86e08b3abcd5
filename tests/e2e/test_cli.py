"""The `pybpf` command end to end: real probes, real events, stopped by SIGINT/SIGTERM/exit().

Events come from helper processes that name themselves (prctl PR_SET_NAME) so that a predicate on
comm counts exactly their events. "Attaching N probes..." is printed before attaching (as bpftrace
does), so programs add `BEGIN { printf("ready\\n"); }`, which runs once everything is attached, and
the test waits for it before firing events. Every wait has a timeout; conftest checks that nothing
stays running or loaded afterwards."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from e2e_helpers import READY, Running, named_child, run_pybpf, trace

COMM = f"pybpfo{os.getpid()}"       # unique: others may run these tests at the same time
OPEN_N_TIMES = "for _ in range(int(sys.argv[2])):\n    open(sys.argv[3]).close()\n"


def opens(path, n, comm=COMM) -> list[str]:
    """The command of a child process named `comm` that opens `path` n times."""
    return named_child(comm, OPEN_N_TIMES, n, path)


def open_files(path, n, comm=COMM):
    """A child process named `comm` opens `path` n times."""
    child = subprocess.run(opens(path, n, comm), timeout=30)
    assert child.returncode == 0


@pytest.fixture
def target():
    # short: str() reads at most 64 bytes, as in bpftrace
    path = f"/tmp/pybpf-e2e-{os.getpid()}.txt"
    with open(path, "w") as f:
        f.write("x")
    yield path
    os.unlink(path)


def map_line(out, key):
    m = re.search(r"^" + re.escape(key) + r": (\d+)$", out, re.M)
    assert m, f"{key} not in {out!r}"
    return int(m[1])


# --- (a) the mission's command ---------------------------------------------------------------

@pytest.mark.kernel
@pytest.mark.parametrize("program", [
    "tracepoint:syscalls:sys_enter_open* < @[probe]=count(); >",      # verbatim
    "tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }",
])
def test_mission_command_counts_opens(program, target):
    run = Running(["-e", program])          # verbatim: no BEGIN to wait for
    run.wait_for("Attaching")
    time.sleep(0.5)                         # "Attaching" comes just before the attach itself
    open_files(target, 25)
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err
    assert map_line(out, "@[tracepoint:syscalls:sys_enter_openat]") >= 25


@pytest.mark.kernel
def test_count_is_exact_for_a_named_process(target):
    out = trace(["-e", READY + f'tracepoint:syscalls:sys_enter_openat /comm == "{COMM}"/ '
                               "{ @[probe] = count(); }"], opens(target, 17))
    assert map_line(out, "@[tracepoint:syscalls:sys_enter_openat]") == 17
    assert out.count("@[") == 1


@pytest.mark.kernel
def test_pid_parameter_predicate(target):
    # the child waits for a line on stdin so its pid is known before it opens anything
    child = subprocess.Popen(named_child("whatever", "sys.stdin.readline()\n" + OPEN_N_TIMES, 9,
                                         target), stdin=subprocess.PIPE, text=True)
    try:
        run = Running(["-e", READY + "tracepoint:syscalls:sys_enter_openat /pid == $1/ "
                                     "{ @opens = count(); }", str(child.pid)])
        run.wait_for("ready")
        child.communicate("go\n", timeout=30)
        out, err, code = run.stop(signal.SIGINT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code == 0, err
    assert map_line(out, "@opens") >= 9        # plus the interpreter's own opens after readline


# --- (b) the printf one-liner ------------------------------------------------------------------

@pytest.mark.kernel
def test_printf_comm_and_path(target):
    out = trace(["-e", READY + 'tracepoint:syscalls:sys_enter_openat /comm == "' + COMM + '"/ '
                               '{ printf("%s %s\\n", comm, str(args->filename)); }'],
                opens(target, 2), until=target)
    assert out.count(f"{COMM} {target}\n") == 2


# --- (c) builtins, functions, aggregations ---------------------------------------------------

def cgroup_id_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        v2 = [line.split(":", 2)[2].strip() for line in f if line.startswith("0::")]
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    if not v2 or not mounts:
        return None
    return os.stat(mounts[0] + v2[0]).st_ino


@pytest.mark.kernel
def test_builtins_in_begin():
    before = time.monotonic_ns()
    run = Running(["-e", 'BEGIN { printf("pid=%d tid=%d uid=%d gid=%d cpu=%d comm=%s nsecs=%lu '
                         'elapsed=%lu probe=%s cgroup=%lu rand=%u,%u\\n", pid, tid, uid, gid, cpu, '
                         "comm, nsecs, elapsed, probe, cgroup, rand, rand); }"])
    run.wait_for("Attaching")
    line = run.wait_for("pid=")
    with open(f"/proc/{run.proc.pid}/comm") as f:
        comm = f.read().strip()
    cgroup = cgroup_id_of(run.proc.pid)
    out, err, code = run.stop(signal.SIGINT)
    after = time.monotonic_ns()
    assert code == 0, err
    v = dict(kv.split("=", 1) for kv in line.split())
    assert int(v["pid"]) == int(v["tid"]) == run.proc.pid
    assert (int(v["uid"]), int(v["gid"])) == (os.getuid(), os.getgid())
    assert 0 <= int(v["cpu"]) < os.cpu_count() * 4
    assert v["comm"] == comm
    # nsecs is CLOCK_BOOTTIME (bpftrace 0.26), at least CLOCK_MONOTONIC
    assert before <= int(v["nsecs"]) <= time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    assert 0 <= int(v["elapsed"]) < after - before
    assert v["probe"] == "BEGIN"
    if cgroup is not None:
        assert int(v["cgroup"]) == cgroup
    r1, r2 = (int(x) for x in v["rand"].split(","))
    assert r1 != r2 and 0 <= r1 < 2 ** 32


@pytest.mark.kernel
def test_begin_and_end_run_once_and_interval_fires():
    run = Running(["-e", 'BEGIN { printf("begin\\n"); } interval:ms:100 { @ticks = count(); '
                         'printf("tick\\n"); } END { printf("end\\n"); }'])
    run.wait_for("Attaching")
    run.wait_for("tick")
    run.wait_for("tick")
    out, err, code = run.stop(signal.SIGTERM)
    assert code == 0, err
    assert out.count("begin\n") == 1 and out.count("end\n") == 1
    assert out.index("begin\n") < out.index("tick\n") < out.index("end\n")
    assert map_line(out, "@ticks") >= 2


@pytest.mark.kernel
def test_exit_stops_the_program_and_runs_end():
    r = run_pybpf(["-e", 'interval:ms:50 { @n = count(); if (@x == 2) { exit(); } @x++; } '
                         'END { printf("end\\n"); }'])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("end\n") == 1
    assert "@x: 2" in r.stdout


@pytest.mark.kernel
def test_functions():
    r = run_pybpf(["-e", 'BEGIN { printf("[%5d|%-4s|%.2s|%x|%lu|%05d|%c|%%]\\n", 42, "ab", "xyz", 255, '
                         '18446744073709551615, 7, 66); '
                         '@m[1] = 1; @m[2] = 2; delete(@m[1]); print(@m); '
                         '@c = count(); @c = count(); zero(@c); print(@c); '
                         '@gone[5] = 5; clear(@gone); print(@gone); '
                         'time("time=%H:%M:%S\\n"); print(7); '
                         '@s = str($1); exit(); printf("not printed\\n"); }', "hello"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "[   42|ab  |xy|ff|18446744073709551615|00007|B|%]" in lines
    assert "@m[2]: 2" in lines and "@m[1]: 1" not in lines
    assert "@c: 0" in lines
    assert not [line for line in lines if line.startswith("@gone")]
    assert [line for line in lines if re.fullmatch(r"time=\d\d:\d\d:\d\d", line)]
    assert "7" in lines
    assert "@s: hello" in lines
    assert "not printed" not in r.stdout


@pytest.mark.kernel
def test_aggregations_from_real_events(target):
    out = trace(["-e", READY + f'tracepoint:syscalls:sys_enter_openat /comm == "{COMM}"/ {{ '
                               "@count[comm] = count(); @sum = sum(3); @avg = avg(10); @min = min(4); "
                               "@max = max(9); @stats = stats(6); @hist = hist(5); "
                               "@lhist = lhist(25, 0, 100, 10); }"],
                opens(target, 4))
    assert map_line(out, f"@count[{COMM}]") == 4
    assert map_line(out, "@sum") == 12
    assert map_line(out, "@avg") == 10
    assert map_line(out, "@min") == 4
    assert map_line(out, "@max") == 9
    assert "@stats: count 4, average 6, total 24" in out
    assert re.search(r"^\[4, 8\)\s+4 \|@+\|$", out, re.M)
    assert re.search(r"^\[20, 30\)\s+4 \|@+\|$", out, re.M)


# --- (d) errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("program,rendered", [
    ("BEGIN { foo(); }",
     "stdin:1:9-14: ERROR: Unknown function: foo\nBEGIN { foo(); }\n        ~~~~~\n"),
    ("BEGIN { @a = 1 + ; }",
     "stdin:1:18-19: ERROR: syntax error, unexpected ;\nBEGIN { @a = 1 + ; }\n                 ~\n"),
])
def test_bad_program_exits_1_with_the_diagnostic(program, rendered):
    r = run_pybpf(["-e", program])
    assert r.returncode == 1
    assert r.stderr == rendered
    assert r.stdout == ""


@pytest.mark.kernel
def test_verifier_rejection_is_reported_without_a_traceback():
    r = run_pybpf(["-e", "BEGIN { while (1) { } }"])
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "verifier" in r.stderr


def test_unknown_tracepoint_and_bad_file():
    r = run_pybpf(["-e", "tracepoint:nope:nothing { @ = count(); }"])
    assert r.returncode == 1 and "Traceback" not in r.stderr and "ERROR" in r.stderr
    r = run_pybpf(["/nonexistent/script.bt"])
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr


# --- (e) JSON, (f) -o ---------------------------------------------------------------------------

@pytest.mark.kernel
def test_json_lines(target):
    out = trace(["-f", "json", "-e", READY + f'tracepoint:syscalls:sys_enter_openat '
                 f'/comm == "{COMM}"/ {{ @[probe] = count(); @h = hist(3); printf("hi %d\\n", 1); }}'],
                opens(target, 3))
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert records[0] == {"type": "attached_probes", "count": 2, "data": {"probes": 2}}
    assert records.count({"type": "printf", "data": "hi 1\n"}) == 3
    assert {"type": "map", "data": {"@": {"tracepoint:syscalls:sys_enter_openat": 3}}} in records
    assert {"type": "hist", "data": {"@h": [{"min": 2, "max": 3, "count": 3}]}} in records


@pytest.mark.kernel
def test_output_file(tmp_path):
    out_file = tmp_path / "out.txt"
    r = run_pybpf(["-o", str(out_file), "-e", 'BEGIN { printf("to file\\n"); @v = 3; exit(); }'])
    assert r.returncode == 0, r.stderr
    text = out_file.read_text()
    assert "to file\n" in text and "@v: 3\n" in text
    assert "to file" not in r.stdout and "@v" not in r.stdout


# --- (g) the other options ------------------------------------------------------------------------

def test_emit_llvm_and_asm():
    r = run_pybpf(["--emit", "llvm", "-e", "BEGIN { @a = count(); }"])
    assert r.returncode == 0, r.stderr
    assert "define" in r.stdout and 'target triple = "bpf' in r.stdout
    r = run_pybpf(["--emit", "asm", "-e", "BEGIN { @a = count(); }"])
    assert r.returncode == 0, r.stderr
    assert "call 1" in r.stdout and "exit" in r.stdout


def test_emit_obj(tmp_path):
    r = run_pybpf(["--emit", "obj", "-o", str(tmp_path / "p.o"), "-e", "BEGIN { @a = count(); }"])
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "p.o").read_bytes()
    assert data[:4] == b"\x7fELF" and data[18] == 247       # e_machine EM_BPF


@pytest.mark.kernel
def test_verify_only_loads_but_attaches_nothing():
    r = run_pybpf(["--verify-only", "-e", 'BEGIN { printf("should not run\\n"); }'])
    assert r.returncode == 0, r.stderr
    assert "should not run" not in r.stdout
    r = run_pybpf(["--verify-only", "-e", "BEGIN { while (1) { } }"])
    assert r.returncode == 1 and "verifier" in r.stderr


@pytest.mark.kernel
def test_list_probes():
    r = run_pybpf(["-l", "tracepoint:syscalls:*open*"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "tracepoint:syscalls:sys_enter_openat" in lines
    assert all(re.fullmatch(r"tracepoint:syscalls:\S*open\S*", line) for line in lines)


def test_version_and_help():
    r = run_pybpf(["--version"])
    assert r.returncode == 0 and re.search(r"pybpf v?\d+\.\d+", r.stdout)
    r = run_pybpf(["-h"])
    assert r.returncode == 0 and "usage: pybpf" in r.stdout and "-e PROGRAM" in r.stdout


@pytest.mark.kernel
def test_script_file_with_params(tmp_path):
    script = tmp_path / "params.bt"
    script.write_text('#!/usr/bin/env pybpf\nBEGIN {\n  printf("n=%d s=%s count=%d\\n", $1 + 1, '
                      'str($2), $#);\n  exit();\n}\n')
    r = run_pybpf([str(script), "41", "word"])
    assert r.returncode == 0, r.stderr
    assert "n=42 s=word count=2\n" in r.stdout


@pytest.mark.kernel
def test_script_from_stdin():
    r = run_pybpf(["-"], input='BEGIN { printf("from stdin\\n"); exit(); }')
    assert r.returncode == 0, r.stderr
    assert "from stdin\n" in r.stdout


def test_script_error_names_the_file(tmp_path):
    script = tmp_path / "bad.bt"
    script.write_text("BEGIN {\n  @x = $y;\n}\n")
    r = run_pybpf([str(script)])
    assert r.returncode == 1
    assert r.stderr.startswith(f"{script}:2:8-10: ERROR: Undefined or undeclared variable: $y\n")


@pytest.mark.kernel
def test_dry_run_attaches_then_stops_before_begin():
    # bpftrace 0.26: "Terminate execution right after attaching all the probes": BEGIN, END and
    # the maps' print never run; an attach failure fails the dry run (--verify-only attaches nothing).
    program = ('BEGIN { printf("begin ran\\n"); } END { printf("end ran\\n"); } '
               'tracepoint:syscalls:sys_enter_getpid { @calls = count(); }')
    r = run_pybpf(["--dry-run", "-e", program])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Attaching 3 probes...\n"
    r = run_pybpf(["--dry-run", "-q", "-e", program])
    assert (r.returncode, r.stdout) == (0, "")
    kprobe = "kprobe:do_nanosleep { @ = count(); }"
    assert run_pybpf(["--verify-only", "-e", kprobe]).returncode == 0
    r = run_pybpf(["--dry-run", "-e", kprobe])
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "ERROR:" in r.stderr, r.stderr
