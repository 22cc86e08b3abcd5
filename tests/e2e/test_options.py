"""bpftrace's command-line options as pybpf takes them (docs/cli.md), each against a run it causes."""

import json
import os
import re
import select
import signal
import subprocess

import pytest

from e2e_helpers import READY, Running, named_child, run_pybpf

WARNF = 'BEGIN { printf("early\\n"); warnf("begun %d", 3); exit(); }'


@pytest.mark.kernel
def test_quiet_leaves_out_the_attaching_line():
    loud = run_pybpf(["-e", 'BEGIN { printf("hi\\n"); exit(); }'])
    quiet = run_pybpf(["-q", "-e", 'BEGIN { printf("hi\\n"); exit(); }'])
    assert loud.stdout.startswith("Attaching 1 probe...\nhi\n"), loud
    assert quiet.returncode == 0 and quiet.stdout.startswith("hi\n"), quiet


@pytest.mark.kernel
def test_quiet_leaves_out_the_attached_probes_record_in_json():
    done = run_pybpf(["-q", "-f", "json", "-e", 'BEGIN { printf("hi\\n"); exit(); }'])
    records = [json.loads(line) for line in done.stdout.splitlines() if line]
    assert records == [{"type": "printf", "data": "hi\n"}], done


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_is_printed_as_bpftrace_prints_its_own(flag):
    done = run_pybpf([flag])
    assert done.returncode == 0
    assert re.fullmatch(r"pybpf v\d+\.\d+\.\d+\n", done.stdout), done.stdout


@pytest.mark.kernel
def test_no_warnings_silences_warnf():
    warned = run_pybpf(["-e", WARNF])
    silent = run_pybpf(["--no-warnings", "-e", WARNF])
    assert "WARNING: begun 3" in warned.stderr, warned
    assert silent.returncode == 0 and "early\n" in silent.stdout, silent
    assert "WARNING" not in silent.stderr, silent


@pytest.mark.kernel
def test_no_warnings_leaves_out_the_warnf_record_in_json():
    # bpftrace 0.26 drops a warnf() whole when warnings are off (AsyncHandlers::printf)
    warned = run_pybpf(["-q", "-f", "json", "-e", WARNF])
    silent = run_pybpf(["-q", "-f", "json", "--no-warnings", "-e", WARNF])
    assert [json.loads(line)["type"] for line in warned.stdout.splitlines()] == ["printf", "warnf"]
    assert [json.loads(line) for line in silent.stdout.splitlines()] == \
        [{"type": "printf", "data": "early\n"}], silent


def _stdout_waiting(run: Running, timeout: float) -> bool:
    return bool(select.select([run.proc.stdout], [], [], timeout)[0])


def _wait_stderr(run: Running, text: str, timeout: float = 20.0) -> None:
    seen = b""
    fd = run.proc.stderr.fileno()
    while text.encode() not in seen:
        assert select.select([fd], [], [], timeout)[0], f"no {text!r} on stderr: {seen!r}"
        chunk = os.read(fd, 4096)
        assert chunk, f"pybpf ended before {text!r}: {seen!r}"
        seen += chunk


# BEGIN's printf comes before its warnf (one ring buffer, in order); the warning goes to stderr
# at once whatever -B says, so once it is there the printf has been handled too.
HOLD = 'BEGIN { printf("early\\n"); warnf("begun"); } interval:s:30 { exit(); }'


@pytest.mark.kernel
def test_line_buffering_writes_each_event_as_it_comes():
    run = Running(["-q", "-B", "line", "-e", HOLD])
    _wait_stderr(run, "begun")
    assert _stdout_waiting(run, 5.0)
    out, _, code = run.stop(signal.SIGINT)
    assert code == 0 and out.startswith("early\n")


@pytest.mark.kernel
def test_full_buffering_holds_the_output_until_exit():
    run = Running(["-q", "-B", "full", "-e", HOLD])
    _wait_stderr(run, "begun")
    assert not _stdout_waiting(run, 1.0)
    out, _, code = run.stop(signal.SIGINT)
    assert code == 0 and out.startswith("early\n")


# bpftrace 0.26's messages for option values it refuses (src/main.cpp, run_bpftrace.cpp)
REFUSED = [
    (["-B", "64K"], "ERROR: USAGE: -B must be either 'line', 'full', or 'none'.\n"),
    (["-f", "yaml"], "ERROR: Invalid output format \"yaml\"\nValid formats: 'text', 'json', 'folded'\n"),
    (["-p", "a1111"], "ERROR: Failed to parse pid: invalid integer: a1111\n"),
    (["-p", "111a1"], "ERROR: Failed to parse pid: invalid trailing bytes: 111a1\n"),
    (["-p", "5000000"], "ERROR: Pid out of range: 5000000\n"),
    (["-k", "--no-warnings"], "ERROR: USAGE: -k, --warnings conflicts with --no-warnings\n"),
    (["-kk"], "ERROR: USAGE: -kk has been deprecated. Use a single -k for runtime warnings for "
              "errors in map lookups and probe reads.\n"),
    (["-c", "true", "-p", "1"], "ERROR: USAGE: Cannot use both -c and -p.\n"),
    (["-d", "bytecode"], "ERROR: USAGE: invalid option for -d: bytecode\n"),
    (["-d", "ast,libbpf"], "ERROR: USAGE: invalid option for -d: libbpf\n"),
]


@pytest.mark.parametrize("options, message", REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_an_invalid_option_value_gets_bpftraces_error(options, message):
    done = run_pybpf(options + ["-e", "BEGIN { exit(); }"])
    assert (done.returncode, done.stdout, done.stderr) == (1, "", message)


PROG = r"""
#include <stdlib.h>
__attribute__((noinline)) int f(int i) { __asm__ volatile(""); return i + 1; }
int main(int argc, char **argv) {
    int n = atoi(argv[1]), s = 0;
    for (int i = 0; i < n; i++) s += f(i);
    return s == 0;
}
"""


@pytest.mark.kernel
def test_command_is_traced_from_its_start_and_ends_the_trace(compile_c):
    prog = compile_c(PROG)
    # Another process runs the same code all along: -c counts only the command's calls.
    other = subprocess.Popen(["sh", "-c", f"while :; do {prog} 1000; done"])
    try:
        done = run_pybpf(["-c", f"{prog} 37", "-e", f"uprobe:{prog}:f {{ @ = count(); }}"])
    finally:
        other.kill()
        other.wait()
    assert done.returncode == 0, done
    assert done.stdout.endswith("\n\n@: 37\n"), done.stdout


CALLS = ("import os, time\nwhile not os.path.exists(sys.argv[3]): time.sleep(0.01)\n"
         "for _ in range(int(sys.argv[2])): os.getppid()\n")


@pytest.mark.kernel
def test_pid_filters_probes_to_that_process_and_its_end_ends_the_trace(tmp_path):
    go = tmp_path / "go"
    traced = subprocess.Popen(named_child(f"pybpfp{os.getpid()}", CALLS, 50, go))
    other = subprocess.Popen(named_child(f"pybpfq{os.getpid()}", CALLS, 70, go))
    try:
        run = Running(["-p", str(traced.pid), "-e",
                       READY + "t:syscalls:sys_enter_getppid { @[pid] = count(); }"])
        run.wait_for("ready")
        go.touch()
        out, err, code = run.stop(sig=None)     # the traced process's exit ends it
    finally:
        for child in (traced, other):
            child.kill()
            child.wait()
    assert code == 0, err
    assert out.endswith(f"\n\n@[{traced.pid}]: 50\n"), out


@pytest.mark.kernel
def test_cpid_is_the_commands_pid():
    done = run_pybpf(["-q", "-c", "sleep 0.3", "-e",
                      'BEGIN { printf("%d\\n", cpid); } '
                      't:syscalls:sys_enter_clock_nanosleep /pid == cpid/ { printf("slept %d\\n", pid); }'])
    assert done.returncode == 0, done
    cpid, slept = done.stdout.split("\n")[:2]
    assert int(cpid) > 0 and slept == f"slept {cpid}", done.stdout


@pytest.mark.kernel
def test_cpid_is_zero_without_a_command():
    done = run_pybpf(["-q", "-e", 'BEGIN { printf("%d\\n", cpid); exit(); }'])
    assert done.stdout.startswith("0\n"), done


@pytest.mark.kernel
def test_a_command_that_cannot_run_is_one_error_line():
    done = run_pybpf(["-q", "-c", "/nonexistent/prog", "-e", "BEGIN { }"])
    assert done.returncode == 0 and "ERROR: -c: cannot run /nonexistent/prog" in done.stderr, done
    assert "Traceback" not in done.stderr


@pytest.mark.kernel
@pytest.mark.parametrize("option", ["-l", "--list"])
def test_list_of_a_program_prints_its_attach_points(option):
    done = run_pybpf([option, "-e", "t:syscalls:sys_enter_getpp* { } BEGIN { } i:s:1 { }"])
    assert done.returncode == 0, done
    assert done.stdout == "tracepoint:syscalls:sys_enter_getppid\nBEGIN\ninterval:s:1\n"


@pytest.mark.kernel
def test_list_of_a_program_with_a_missing_probe_is_its_error():
    done = run_pybpf(["-l", "-e", "t:syscalls:nosuch { }"])
    assert done.returncode == 1 and "ERROR: tracepoint not found: syscalls:nosuch" in done.stderr


def test_verbose_list_of_a_struct_prints_its_members_as_bpftrace():
    done = run_pybpf(["-lv", "struct list_head"])
    assert done.returncode == 0, done
    assert done.stdout == ("struct list_head {\n\tstruct list_head *next;\n"
                           "\tstruct list_head *prev;\n};\n\n")
    task = run_pybpf(["-lv", "struct task_struct"]).stdout.splitlines()
    assert task[0] == "struct task_struct {" and "\tchar comm[16];" in task and task[-2] == "};"


def test_verbose_list_of_an_unknown_struct_is_one_error_line():
    done = run_pybpf(["-lv", "struct no_such_struct"])
    assert done.returncode == 1
    assert done.stderr == "ERROR: no struct 'no_such_struct' in the kernel's BTF\n"


@pytest.mark.kernel
def test_info_reports_the_kernel_and_its_bpf_features():
    done = run_pybpf(["--info"])
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    for section in ("System", "Build", "Kernel helpers", "Kernel features", "Map types",
                    "Program types", "Probe types"):
        assert section in lines
    assert f"  OS: Linux {os.uname().release} {os.uname().version}" in lines
    # this kernel has what pybpf's own programs need
    for line in ("  ringbuf: yes", "  get_current_pid_tgid: yes", "  raw_tracepoint: yes"):
        assert line in lines


@pytest.mark.kernel
def test_info_says_no_for_a_helper_the_kernel_does_not_have():
    from pybpf.runtime.info import helper_available

    assert helper_available(9999) is False
    assert helper_available(14) is True         # get_current_pid_tgid


@pytest.mark.kernel
def test_debug_prints_each_stage_to_stderr_then_runs():
    done = run_pybpf(["-q", "-d", "ast", "--debug", "codegen,types", "-e",
                      'BEGIN { $n = 2; @[comm] = count(); exit(); }'])
    assert done.returncode == 0, done
    assert "AST after: parse\n-------------------\nScript config=() macros=() includes=() " \
           "c_definitions=() defines=()\n  probes[0]: Probe predicate=None\n    " \
           "attach_points[0]: AttachPointText text='BEGIN'\n" in done.stderr
    assert "      value: Call name='count' args=()\n" in done.stderr
    assert "Types\n-----\n@[string[16]]: count int64\n$n: int64\n" in done.stderr
    assert "LLVM IR" in done.stderr and 'define i64 @"probe_0"' in done.stderr
    assert "Disassembled bytecode" not in done.stderr and "Verifier log" not in done.stderr
    assert "@[python" in done.stdout       # and it ran


@pytest.mark.kernel
def test_debug_all_adds_the_bpf_assembly_and_the_verifiers_log():
    done = run_pybpf(["-q", "-d", "all", "-e", 'BEGIN { exit(); } t:syscalls:sys_enter_getppid { }'])
    assert done.returncode == 0, done
    assert "Disassembled bytecode\n----------------------------\n\n" in done.stderr
    assert "\texit\n" in done.stderr
    for probe in ("BEGIN", "tracepoint:syscalls:sys_enter_getppid"):
        assert re.search(f"Verifier log of {probe}\n(.*\n)*processed \\d+ insns", done.stderr), done.stderr


def test_bpftraces_long_option_names_are_taken():
    done = run_pybpf(["--quiet", "--verbose", "--cmd", "true", "--pid", "1", "-e", "BEGIN { }"])
    assert (done.returncode, done.stderr) == (1, "ERROR: USAGE: Cannot use both -c and -p.\n")
    done = run_pybpf(["--warnings", "--no-warnings", "--output", "/dev/null", "-e", "BEGIN { }"])
    assert done.stderr == "ERROR: USAGE: -k, --warnings conflicts with --no-warnings\n"


@pytest.mark.kernel
def test_cache_options_bound_and_empty_the_compile_cache(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    objects = tmp_path / "pybpf" / "objects"
    first = run_pybpf(["-q", "-e", 'BEGIN { printf("one\\n"); exit(); }'], env=env)
    assert first.stdout.startswith("one\n") and len(list(objects.iterdir())) == 1, first
    # a bound below one object's size: each write leaves the cache within it, so nothing stays
    bounded = run_pybpf(["-q", "--cache-max-size", "1K", "-e", 'BEGIN { printf("two\\n"); exit(); }'],
                        env=env)
    assert bounded.stdout.startswith("two\n") and list(objects.iterdir()) == [], bounded
    run_pybpf(["-q", "-e", 'BEGIN { printf("three\\n"); exit(); }'], env=env)
    cleared = run_pybpf(["--clear-cache"], env=env)
    assert cleared.returncode == 0
    assert cleared.stdout == (f"removed 1 compiled object, and the other caches, from "
                              f"{tmp_path / 'pybpf'}\n")
    assert not objects.exists() or list(objects.iterdir()) == []
