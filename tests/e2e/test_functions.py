"""Functions end to end, against events each test causes, compared with what bpftrace 0.26's
documentation (its stdlib reference) says of each."""

import json
import os
import pwd
import re
import subprocess
import time

import pytest

from e2e_helpers import READY, Running, named_child, run_pybpf, trace, trace_line

OPEN_PATHS = "import sys\nfor p in sys.argv[2:]:\n    try:\n        open(p).close()\n    except OSError:\n        pass\n"


def traced_opens(script: str, comm: str, *paths: str) -> str:
    """Run `script` (which counts openat calls of `comm`), have a child named `comm` open
    `paths`, and return what pybpf printed."""
    return trace(["-e", READY + script], named_child(comm, OPEN_PATHS, *paths))


@pytest.mark.kernel
def test_strncmp_and_strcontains_on_opened_paths():
    # bpftrace: strncmp(s1, s2, n) is 0 when the first n characters agree; strcontains(h, n) is
    # true when h contains n.
    out = traced_opens(
        't:syscalls:sys_enter_openat /comm == "pybpfstrings"/ { $f = str(args.filename); '
        '@prefix[strncmp($f, "/tmp/pybpf-needle", 11)] = count(); '
        '@contains[strcontains($f, "needle")] = count(); }',
        "pybpfstrings", "/tmp/pybpf-needle-1", "/tmp/pybpf-needle-2", "/tmp/pybpf-other")
    assert re.search(r"^@prefix\[0\]: 3$", out, re.M), out           # all share "/tmp/pybpf-"
    assert re.search(r"^@contains\[1\]: 2$", out, re.M), out
    assert re.search(r"^@contains\[0\]: 1$", out, re.M), out


def test_strncmp_needs_a_constant_length():
    r = run_pybpf(["-e", 'BEGIN { $n = 3; printf("%d\\n", strncmp("a", "b", $n)); }'])
    assert r.returncode != 0 and "Expected a constant integer" in r.stderr

WRITE_258_BYTES = "import os\nfd = os.open('/dev/null', os.O_WRONLY)\nos.write(fd, b'x' * 258)\n"


@pytest.mark.kernel
def test_bswap_reverses_the_bytes_at_the_values_width():
    # bpftrace: bswap(n) reverses n's bytes; the result is unsigned, as wide as n.
    line = trace_line(["-e", READY + 't:syscalls:sys_enter_write /comm == "pybpfbswap"/ { '
                       'printf("%x %x %x\\n", bswap(args.count), bswap((uint16)args.count), '
                       'bswap((uint32)args.count)); }'],
                      named_child("pybpfbswap", WRITE_258_BYTES), " ")     # 258 = 0x0102
    assert line.split() == ["201000000000000", "201", "2010000"]


def own_cgroup_dir() -> str:
    with open("/proc/self/cgroup") as f:
        line = next(line for line in f if line.startswith("0::"))
    return "/sys/fs/cgroup" + line[3:].strip()


@pytest.mark.kernel
def test_cgroupid_is_the_id_cgroup_reads_in_that_cgroup():
    # bpftrace: cgroupid(path) is the cgroup v2 id of the cgroup at path, resolved at compile
    # time. pybpf runs BEGIN in its own task, in this test's cgroup.
    path = own_cgroup_dir()
    r = run_pybpf(["-e", f'BEGIN {{ printf("%d %d\\n", cgroupid("{path}"), cgroup); exit(); }}'])
    assert r.returncode == 0, r.stderr
    resolved, current = r.stdout.splitlines()[1].split()
    assert int(resolved) == int(current) == os.stat(path).st_ino


def test_cgroupid_of_a_missing_cgroup_is_a_compile_error():
    r = run_pybpf(["-e", 'BEGIN { printf("%d\\n", cgroupid("/sys/fs/cgroup/no-such-cgroup")); }'])
    assert r.returncode == 1
    assert "cgroupid: cannot find the cgroup /sys/fs/cgroup/no-such-cgroup" in r.stderr


def cgroup2_mount() -> str | None:
    with open("/proc/self/mounts") as f:
        return next((fields[1] for fields in map(str.split, f) if fields[2] == "cgroup2"), None)


@pytest.fixture
def new_cgroup():
    """A fresh cgroup v2 (its path under the hierarchy, its directory), removed afterwards."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    name = f"/pybpf-test-{os.getpid()}"
    os.mkdir(mount + name)
    yield name, mount + name
    os.rmdir(mount + name)


@pytest.mark.kernel
def test_cgroup_path_names_the_cgroup_in_each_hierarchy(new_cgroup):
    # bpftrace 0.26: cgroup_path(id, filter) is `hierarchy:path` for each hierarchy whose name
    # matches filter, cgroup v2's being "unified", found in user space when printed.
    name, folder = new_cgroup
    run = Running(["-e", READY + 'tracepoint:syscalls:sys_enter_sched_yield /comm == "cgpathtest"/ '
                   '{ print(cgroup_path(cgroup, "unif*")); print(cgroup_path(cgroup)); exit(); }'])
    run.wait_for("ready")
    joins = "open(sys.argv[2] + '/cgroup.procs', 'w').write(str(os.getpid())); os.sched_yield()"
    child = subprocess.run(named_child("cgpathtest", "import os; " + joins, folder), timeout=30)
    assert child.returncode == 0
    filtered, every = run.wait_for("unified:"), run.wait_for("unified:")
    out, err, code = run.stop(None)         # the script exit()s
    assert code == 0, err
    assert filtered == f"unified:{name}\n"
    assert every.startswith(f"unified:{name}")      # then the v1 hierarchies, if any, by name


CLOCK_IDS = {"monotonic": time.CLOCK_MONOTONIC, "boot": time.CLOCK_BOOTTIME,
             "tai": time.CLOCK_TAI, "sw_tai": time.CLOCK_TAI}


@pytest.mark.kernel
def test_nsecs_reads_the_named_kernel_clock():
    # bpftrace 0.26: nsecs(monotonic|boot|tai|sw_tai) read those clocks; nsecs alone is boot.
    clocks = list(CLOCK_IDS)
    run = Running(["-e", READY + 't:syscalls:sys_enter_getppid /comm == "pybpfclock"/ { printf("'
                   + " ".join("%lu" for _ in range(len(clocks) + 1)) + '\\n", nsecs, '
                   + ", ".join(f"nsecs({c})" for c in clocks) + "); }"])
    run.wait_for("ready")
    before = {c: time.clock_gettime_ns(i) for c, i in CLOCK_IDS.items()}
    child = named_child("pybpfclock", "import os\nos.getppid()\n")
    assert subprocess.run(child, timeout=30).returncode == 0
    after = {c: time.clock_gettime_ns(i) for c, i in CLOCK_IDS.items()}
    line = run.wait_for(" ")
    out, err, code = run.stop()
    assert code == 0, err
    default, *values = map(int, line.split())
    assert before["boot"] <= default <= after["boot"]
    for clock, value in zip(clocks, values):
        assert before[clock] <= value <= after[clock], clock


@pytest.mark.kernel
def test_exit_code_is_pybpfs_exit_status():
    # bpftrace 0.26: exit(code) ends the program (END runs, maps print) with that exit status.
    run = Running(["-e", READY + 't:syscalls:sys_enter_write /comm == "pybpfexit"/ { @n = count(); '
                   "exit(args.count); } END { printf(\"end\\n\"); }"])
    run.wait_for("ready")
    write_42 = "import os\nos.write(os.open('/dev/null', os.O_WRONLY), b'x' * 42)\n"
    assert subprocess.run(named_child("pybpfexit", write_42), timeout=30).returncode == 0
    out, err, code = run.stop(sig=None)
    assert code == 42, err
    assert "end\n" in out and re.search(r"^@n: 1$", out, re.M), out
    assert run_pybpf(["-e", "BEGIN { exit(); }"]).returncode == 0


@pytest.mark.kernel
def test_has_key_tells_keys_seen_before():
    # bpftrace 0.26: has_key(@m, k) is true when @m has the key k (a tuple for several keys).
    out = traced_opens(
        't:syscalls:sys_enter_openat /comm == "pybpfhaskey"/ { $f = str(args.filename); '
        'if (has_key(@seen, $f)) { @again = count(); } '
        'if (!has_key(@pairs, ($f, 1))) { @first = count(); } @seen[$f] = 1; @pairs[$f, 1] = 1; }',
        "pybpfhaskey", "/tmp/pybpf-a", "/tmp/pybpf-b", "/tmp/pybpf-a", "/tmp/pybpf-a")
    assert re.search(r"^@again: 2$", out, re.M), out
    assert re.search(r"^@first: 2$", out, re.M), out


def test_has_key_on_a_map_without_keys_is_an_error():
    # bpftrace 0.26: "Error if called with a map that has no keys (aka scalar map)".
    r = run_pybpf(["-e", "BEGIN { @s = 1; if (has_key(@s, 1)) { exit(); } }"])
    assert r.returncode == 1 and "has_key() expects a map with keys; @s has none" in r.stderr


@pytest.mark.kernel
def test_errorf_and_warnf_print_the_call_location_on_stderr():
    # bpftrace 0.26's example: BEGIN { errorf("Something bad with args: %d, %s", 10, "arg2"); }
    # prints "stdin:1:9-62: ERROR: Something bad with args: 10, arg2"; warnf says WARNING.
    script = ('t:syscalls:sys_enter_getppid /comm == "pybpferrorf"/ { errorf("Something bad with '
              'args: %d, %s", 10, comm); warnf("pid %d", pid); }')
    run = Running(["-e", READY + script])
    run.wait_for("ready")
    child = subprocess.Popen(named_child("pybpferrorf", "import os, time\nos.getppid()\n"
                                         "time.sleep(0.5)\n"))
    pid = child.pid
    assert child.wait(timeout=30) == 0
    out, err, code = run.stop()
    assert code == 0, err
    source = READY + script
    error_call = 'errorf("Something bad with args: %d, %s", 10, comm)'
    warn_call = 'warnf("pid %d", pid)'
    start, warn_start = source.index(error_call) + 1, source.index(warn_call) + 1
    assert err.splitlines() == [
        f"stdin:1:{start}-{start + len(error_call)}: ERROR: Something bad with args: 10, pybpferrorf",
        f"stdin:1:{warn_start}-{warn_start + len(warn_call)}: WARNING: pid {pid}"]
    assert "Something bad" not in out


EIGHT_ARGUMENTS = r"""
#include <stdio.h>
__attribute__((noinline)) long eight(long a, long b, long c, long d, long e, long f, long g,
                                     long h) { return a + b + c + d + e + f + g + h; }
int main(void) { printf("%ld\n", eight(1, 2, 3, 4, 5, 6, 700, 800)); return 0; }
"""


@pytest.fixture
def eight_arguments(tmp_path):
    """A program that calls eight(1, ..., 6, 700, 800): its seventh and eighth arguments go on
    the stack (System V x86-64)."""
    source = tmp_path / "eight.c"
    source.write_text(EIGHT_ARGUMENTS)
    binary = tmp_path / "eight"
    subprocess.run(["cc", "-O1", "-o", str(binary), str(source)], check=True)
    return str(binary)


@pytest.mark.kernel
def test_sarg_reads_the_arguments_passed_on_the_stack(eight_arguments):
    # bpftrace 0.26: sarg0, sarg1, ... are a function's arguments passed on the stack.
    line = trace_line(["-e", READY + f'uprobe:{eight_arguments}:eight {{ printf("%d %d %d\\n", '
                       "arg5, sarg0, sarg1); }"], [eight_arguments], " ", capture_output=True)
    assert line.split() == ["6", "700", "800"]


@pytest.mark.kernel
def test_ctx_is_the_probes_typed_context(eight_arguments):
    # bpftrace 0.26: ctx is the probe's context; a uprobe's is struct pt_regs, where the first
    # two arguments are in di and si.
    line = trace_line(["-e", READY + f'uprobe:{eight_arguments}:eight {{ printf("%d %d %d\\n", '
                       "ctx->di, ctx->si, ctx != 0); }"], [eight_arguments], " ", capture_output=True)
    assert line.split() == ["1", "2", "1"]


@pytest.mark.kernel
def test_reg_reads_the_interrupted_registers_and_print_shows_pointers_in_hex(eight_arguments):
    # bpftrace 0.26: reg("name") is a register of the probed code (di, si: the first two
    # arguments; ip: where it stopped); print() of a pointer is its hex.
    run = Running(["-e", READY + f'uprobe:{eight_arguments}:eight {{ printf("%d %d %d\\n", '
                   'reg("di"), reg("si"), reg("ip") > 0); '
                   'print(ctx); }'])
    run.wait_for("ready")
    assert subprocess.run([eight_arguments], timeout=30, capture_output=True).returncode == 0
    line = run.wait_for(" ")
    pointer = run.wait_for("0x")
    out, err, code = run.stop()
    assert code == 0, err
    assert line.split() == ["1", "2", "1"]
    assert re.fullmatch(r"0x[0-9a-f]{16}", pointer.strip())


def test_system_is_refused_without_unsafe():
    # bpftrace: "system() is an unsafe function being used in safe mode", at compile time.
    r = run_pybpf(["-e", 'BEGIN { system("touch /tmp/x"); exit(); }'])
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == \
        "stdin:1:9-31: ERROR: system() is an unsafe function being used in safe mode"


@pytest.mark.kernel
def test_system_with_unsafe_runs_the_command(tmp_path):
    # bpftrace 0.26: system(fmt, ...) runs the formatted command (fork and exec) and prints its
    # standard output; in JSON a "syscall" record.
    run = Running(["--unsafe", "-f", "json", "-e", READY +
                   't:syscalls:sys_enter_getppid /comm == "pybpfsystem"/ { '
                   f'system("touch {tmp_path}/made-by-%d", pid); system("echo %s", comm); }}'])
    run.wait_for("ready")
    child = subprocess.Popen(named_child("pybpfsystem", "import os\nos.getppid()\n"))
    assert child.wait(timeout=30) == 0
    line = run.wait_for("syscall")
    out, err, code = run.stop()
    assert code == 0, err
    assert os.path.exists(tmp_path / f"made-by-{child.pid}")
    assert line == '{"type": "syscall", "data": "pybpfsystem\\n"}\n'


@pytest.mark.kernel
def test_signal_with_unsafe_signals_the_traced_process(eight_arguments):
    # bpftrace 0.26: signal(sig) sends the signal, by name or number, to the traced process.
    assert "unsafe function" in run_pybpf(
        ["-e", f'uprobe:{eight_arguments}:eight {{ signal("SIGTERM"); }}']).stderr
    run = Running(["--unsafe", "-e", READY + f'uprobe:{eight_arguments}:eight {{ signal("SIGTERM"); }}'])
    run.wait_for("ready")
    traced = subprocess.run([eight_arguments], timeout=30, capture_output=True)
    out, err, code = run.stop()
    assert code == 0, err
    assert traced.returncode == -15 and traced.stdout == b""


def traced_call(script: str, comm: str, body: str, *args) -> str:
    """The first line `script` prints when a child named `comm` runs `body`."""
    return trace_line(["-e", READY + script], named_child(comm, body, *args), "|").rstrip("\n")


@pytest.mark.kernel
def test_strftime_formats_a_boot_time_timestamp_in_local_time():
    # bpftrace 0.26: strftime(fmt, nsecs) formats the nanoseconds since boot as strftime(3) does,
    # plus %f, the microseconds zero-padded to six digits.
    before = time.time()
    line = traced_call('t:syscalls:sys_enter_getppid /comm == "pybpftime"/ { printf("|%s|\\n", '
                       'strftime("%Y-%m-%d %H:%M:%S.%f", nsecs)); }',
                       "pybpftime", "import os\nos.getppid()\n")
    after = time.time()
    stamp = line.strip("|")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", stamp), stamp
    seconds = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + int(stamp[20:]) / 1e6
    assert before - 0.01 <= seconds <= after + 0.01


@pytest.mark.kernel
def test_strerror_names_the_errno_a_syscall_returned():
    # bpftrace 0.26: strerror(errno) is the error's message, as strerror(3).
    line = traced_call('t:syscalls:sys_exit_openat /comm == "pybpferrno" && args.ret < 0/ { '
                       'printf("|%s|\\n", strerror(-args.ret)); }',
                       "pybpferrno", OPEN_PATHS, "/tmp/pybpf-no-such-dir/file")
    assert line == "|No such file or directory|"


@pytest.mark.kernel
def test_syscall_name_counts_syscalls_by_name():
    # bpftrace 0.26's syscount.bt: @syscall[syscall_name(args.id)] = count() counts each syscall
    # under its name (syscall_name(nr): the syscall's name as a string).
    out = trace(["-e", READY + 'tracepoint:raw_syscalls:sys_enter /comm == "pybpfsysname"/ { '
                 "@[syscall_name(args.id)] = count(); }"],
                named_child("pybpfsysname", "import os\nfor _ in range(3):\n    os.getppid()\n"))
    assert re.search(r"^@\[getppid\]: 3$", out, re.M), out
    assert re.search(r"^@\[exit_group\]: 1$", out, re.M), out


@pytest.mark.kernel
def test_syscall_name_compares_with_a_literal_name():
    # bpftrace 0.26 compares the name string; pybpf the number the literal names (same result)
    out = trace(["-e", READY + 'tracepoint:raw_syscalls:sys_enter /comm == "pybpfsyscmp"/ { '
                 '$s = syscall_name(args.id); if (syscall_name(args.id) == "getppid") { @same++; } '
                 'if ("getppid" != $s) { @other++; } }'],
                named_child("pybpfsyscmp", "import os\nfor _ in range(3):\n    os.getppid()\n"))
    assert re.search(r"^@same: 3$", out, re.M), out
    assert int(re.search(r"^@other: (\d+)$", out, re.M)[1]) >= 1, out


@pytest.mark.kernel
def test_syscall_name_is_a_json_string():
    # bpftrace 0.26 prints syscall_name()'s string as is: a JSON map key, "Unknown syscall" for a
    # number no syscall has.
    r = run_pybpf(["-f", "json", "-e", 'BEGIN { @[syscall_name(110)] = 1; @[syscall_name(-1)] = 2; '
                   'printf("%s\\n", syscall_name(0)); exit(); }'])
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert {"type": "printf", "data": "read\n"} in records
    assert {"type": "map", "data": {"@": {"Unknown syscall": 2, "getppid": 1}}} in records


@pytest.mark.kernel
def test_username_is_the_traced_tasks_user():
    # bpftrace 0.26: username is the current task's user name (resolved when printed).
    as_nobody = "import os\nos.setuid(65534)\nos.getppid()\n"
    line = traced_call('t:syscalls:sys_enter_getppid /comm == "pybpfuser"/ { printf("|%s|%d|\\n", '
                       "username, uid); }", "pybpfuser", as_nobody)
    assert line == f"|{pwd.getpwuid(65534).pw_name}|65534|"


@pytest.mark.kernel
def test_macaddr_prints_six_bytes_as_a_mac_address():
    # bpftrace 0.26: macaddr(x) prints x's six bytes as 18:C0:4D:08:2E:BB.
    write_mac = ("import os\nfd = os.open('/dev/null', os.O_WRONLY)\n"
                 "os.write(fd, bytes([0x18, 0xc0, 0x4d, 0x08, 0x2e, 0xbb]))\n")
    line = traced_call('t:syscalls:sys_enter_write /comm == "pybpfmac"/ { printf("|%s|%s|\\n", '
                       "macaddr(str(args.buf, 7)), macaddr(0x665544332211)); }",
                       "pybpfmac", write_mac)
    assert line == "|18:C0:4D:08:2E:BB|11:22:33:44:55:66|"


@pytest.mark.kernel
def test_ntop_and_pton_on_a_connections_addresses():
    # bpftrace 0.26: ntop(addr) prints an IPv4 (an integer, or 4 bytes) or IPv6 (16 bytes)
    # address; pton("addr") parses one at compile time. newstate 2 is TCP_SYN_SENT: connect().
    connect = ("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\n"
               "socket.create_connection(s.getsockname()).close()\n")
    line = traced_call('rawtracepoint:inet_sock_set_state /comm == "pybpfinet" && args.newstate == 2/ { '
                       '$d = args.sk->__sk_common.skc_daddr; printf("|%s|%d|%s|%s|%s|\\n", ntop($d), '
                       '$d == pton("127.0.0.1"), ntop(pton("fe80::1")), ntop(2, pton("10.0.0.1")), '
                       'ntop((uint8[4])(uint32)$d)); }',
                       "pybpfinet", connect)
    assert line == "|127.0.0.1|1|fe80::1|10.0.0.1|127.0.0.1|"


@pytest.mark.kernel
def test_print_top_and_div():
    # bpftrace 0.26: print(@m, top) prints the top entries with the greatest values, print(@m,
    # top, div) scales the values first (its example: 5, 6, 7 divided by 2 print 3, 3, 4).
    paths = [f"/tmp/pybpf-top-{k}" for k in range(1, 5) for _ in range(k)]
    body = OPEN_PATHS + "import os\nos.getppid()\n"
    out = trace(["-e", READY + 't:syscalls:sys_enter_openat /comm == "pybpftop"/ { '
                 "@[str(args.filename)] = count(); } "
                 't:syscalls:sys_enter_getppid /comm == "pybpftop"/ { print(@, 2); '
                 'printf("--\\n"); print(@, 0, 3); clear(@); }'],
                named_child("pybpftop", body, *paths), until="--")
    printed = out.split("ready\n", 1)[1]
    assert printed.startswith("@[/tmp/pybpf-top-3]: 3\n@[/tmp/pybpf-top-4]: 4\n--\n"
                              "@[/tmp/pybpf-top-1]: 0\n@[/tmp/pybpf-top-2]: 1\n"
                              "@[/tmp/pybpf-top-3]: 1\n@[/tmp/pybpf-top-4]: 1\n"), printed


@pytest.mark.kernel
def test_buf_and_printfs_r_conversions_on_written_bytes():
    # bpftrace 0.26: buf(x, n) reads n bytes; %r prints printable ASCII as itself and other bytes
    # as \xNN, %rx every byte as \xNN, %rh as "0a fe".
    write = ("import os\nfd = os.open('/dev/null', os.O_WRONLY)\n"
             "os.write(fd, b'ab\\x00\\xfe\\n')\n")
    line = traced_call('t:syscalls:sys_enter_write /comm == "pybpfbuf"/ { $b = buf(args.buf, '
                       'args.count); printf("|%r|%rx|%rh|%r|\\n", $b, $b, $b, buf(args.buf, 2)); }',
                       "pybpfbuf", write)
    assert line == "|ab\\x00\\xfe\\x0a|\\x61\\x62\\x00\\xfe\\x0a|61 62 00 fe 0a|ab|"
    r = run_pybpf(["-f", "json", "-e", 'BEGIN { print(buf("a\\x01", 2)); exit(); }'])
    assert r.stdout.splitlines()[1] == '{"type": "value", "data": "a\\\\x01"}'


@pytest.mark.kernel
def test_join_prints_execves_argv():
    # bpftrace 0.26: join(argv[, sep]) prints the strings of execve's argv joined by sep
    # (default " "), a line of its own; in JSON a "join" record. At sys_enter_execve, comm is
    # still the caller's.
    run = Running(["-f", "json", "-e", READY + 't:syscalls:sys_enter_execve /comm == "pybpfjoin"/ '
                   '{ join(args.argv); join(args.argv, "|"); }'])
    run.wait_for("ready")
    execute = "import os\nos.execv('/bin/true', ['/bin/true', 'one', 'two words', ''])\n"
    assert subprocess.run(named_child("pybpfjoin", execute), timeout=30).returncode == 0
    first, second = run.wait_for('"join"'), run.wait_for('"join"')
    out, err, code = run.stop()
    assert code == 0, err
    assert first == '{"type": "join", "data": "/bin/true one two words "}\n'
    assert second == '{"type": "join", "data": "/bin/true|one|two words|"}\n'
