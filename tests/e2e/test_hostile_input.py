"""Hostile input through the real `pybpf` command: each case ends in success or one `ERROR:`
report and exit status 1, with nothing loaded; never a traceback or an "internal error"."""

import os
import shutil
import subprocess
import sys

import pytest
from e2e_helpers import PYBPF, READY, Running, run_pybpf

OPENAT = "tracepoint:syscalls:sys_enter_openat"


def assert_one_error(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 1 and exactly one report: 'ERROR: message', or a diagnostic with that message
    (its header, the source line, the underline)."""
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].endswith(f"ERROR: {message}"), done.stderr
    assert len(lines) in (1, 3), done.stderr


# Columns past what the line info holds ---------------------------------------------------------

def test_a_statement_past_column_65535_compiles():
    done = run_pybpf(["--no-cache", "--emit", "llvm", "-e",
                      "BEGIN { $x = 1;" + " " * 70000 + 'printf("%d\\n", $x); exit(); }'])
    assert done.returncode == 0 and "!DILocation(column: 1023, line: 1," in done.stdout, done.stderr


@pytest.mark.kernel
def test_a_verifier_rejection_past_column_1023_underlines_its_statement():
    program = OPENAT + " { $i = 0;" + " " * 70000 + "while ($i >= 0) { $i++; } }"
    done = run_pybpf(["--no-cache", "--verify-only", "-e", program])
    start = program.index("while") + 1
    header = done.stderr.splitlines()[0]
    assert header == (f"stdin:1:{start}-{len(program) - 1}: ERROR: the kernel's verifier rejected "
                      f"the program for {OPENAT}"), header[:200]


# Deep nesting ----------------------------------------------------------------------------------

@pytest.mark.kernel
def test_a_5000_term_sum_runs_as_in_bpftrace():
    done = run_pybpf(["--no-cache", "-e", "BEGIN { @x = " + "+".join(["1"] * 5000) + "; exit(); }"])
    assert (done.returncode, done.stderr) == (0, "") and "@x: 5000" in done.stdout


@pytest.mark.parametrize("body", ["@x = " + "(" * 5000 + "1" + ")" * 5000 + ";",
                                  "$a = 1; @x = " + "$a ? 1 : " * 60 + "0;",
                                  "$a = 1; " + "if ($a) { " * 3000 + "@x = 1;" + " }" * 3000])
def test_deep_parentheses_ternaries_and_blocks_compile(body):
    done = run_pybpf(["--no-cache", "--emit", "llvm", "-e", "BEGIN { " + body + " }"])
    assert done.returncode == 0 and "define" in done.stdout, done.stderr[-500:]


def test_the_library_compiles_deep_programs_as_the_cli_does():
    import pybpf
    prog = pybpf.compile("BEGIN { @x = " + "+".join(["1"] * 3000) + "; exit(); }", cache=False)
    assert "define" in prog.ir
    with pytest.raises(pybpf.CompileError, match="nests too deeply"):
        pybpf.compile("BEGIN { @x = " + "+".join(["1"] * 20000) + "; }", cache=False)


def test_nesting_past_the_limit_is_one_error_with_the_span():
    done = run_pybpf(["--no-cache", "--emit", "llvm", "-e",
                      "BEGIN { @x = " + "+".join(["1"] * 20000) + "; }"])
    assert_one_error(done, "the program nests too deeply here: pybpf compiles up to 10000 levels "
                           "of expressions and blocks")
    assert done.stderr.startswith("stdin:1:")


# Bytes that are not UTF-8 ----------------------------------------------------------------------

def test_a_latin1_byte_outside_a_string_is_one_error_with_file_line_and_column(tmp_path):
    script = tmp_path / "latin1.bt"
    script.write_bytes(b'BEGIN {\n  \xe9 exit(); }\n')
    done = run_pybpf(["--emit", "llvm", str(script)])
    assert_one_error(done, "syntax error, unexpected byte 0xe9 (not UTF-8)")
    assert done.stderr.startswith(f"{script}:2:3-4: ERROR:")


@pytest.mark.kernel
def test_a_latin1_byte_in_a_string_literal_is_printed_as_that_byte(tmp_path):
    script = tmp_path / "latin1.bt"
    script.write_bytes(b'BEGIN { printf("caf\xe9\\n"); exit(); }\n')
    done = subprocess.run(PYBPF + ["--no-cache", str(script)], capture_output=True, timeout=30)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == b"Attaching 1 probe...\ncaf\xe9\n\n\n"


COMM = b"caf\xe9\xff"       # invalid UTF-8 in the kernel's copy of the task name
_SET_COMM = ("import ctypes, os\nctypes.CDLL(None).prctl(15, %r, 0, 0, 0)\nos.getppid()\n" % COMM)


@pytest.mark.kernel
@pytest.mark.parametrize("fmt, expected", [
    ("text", b"<caf\xe9\xff>\n"),
    ("json", b'{"type": "printf", "data": "<caf\\\\xe9\\\\xff>\\n"}\n')])
def test_invalid_utf8_from_the_kernel_is_written_as_its_bytes(fmt, expected):
    program = (READY + "tracepoint:syscalls:sys_enter_getppid /pid == $1/ "
               '{ printf("<%s>\\n", comm); exit(); }')
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()\n" + _SET_COMM],
                             stdin=subprocess.PIPE)
    p = Running(["--no-cache", "-f", fmt, "-e", program, str(child.pid)])
    p.wait_for("ready")
    child.communicate(b"", timeout=10)
    out, err = p.proc.communicate(timeout=20)       # exit() ends it: the bytes as they came
    assert (p.proc.returncode, err) == (0, b"") and expected in p.seen + out, p.seen + out


@pytest.mark.kernel
def test_a_non_ascii_string_on_an_ascii_terminal_is_written_as_utf8():
    done = subprocess.run(PYBPF + ["--no-cache", "-e", 'BEGIN { printf("h\xe9llo\\n"); exit(); }'],
                          capture_output=True, timeout=30,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == "Attaching 1 probe...\nh\xe9llo\n\n\n".encode()


# Closed descriptors ----------------------------------------------------------------------------

@pytest.mark.kernel
@pytest.mark.parametrize("args", [["-e", 'BEGIN { printf("h\xe9llo\\n"); exit(); }'],
                                  ["-l", "tracepoint:syscalls:sys_enter_open*"]])
def test_a_closed_stdout_is_one_error_before_anything_is_loaded(args):
    done = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", *PYBPF, "--no-cache", *args],
                          stderr=subprocess.PIPE, text=True, timeout=30)
    assert_one_error(done, "cannot write the output: standard output is closed (use -o FILE)")


def test_a_script_from_a_closed_stdin_is_one_error():
    done = subprocess.run(["bash", "-c", 'exec "$@" <&-', "bash", *PYBPF, "--emit", "llvm", "-"],
                          capture_output=True, text=True, timeout=30)
    assert_one_error(done, "cannot read the program from stdin: it is closed")


# printf ----------------------------------------------------------------------------------------

@pytest.mark.kernel
def test_an_unreasonable_printf_width_is_refused_at_compile_time():
    done = run_pybpf(["--no-cache", "-e", 'BEGIN { printf("%99999999999999999999d\\n", 1); exit(); }'])
    assert_one_error(done, "printf: the width of '%99999999999999999999d' is too large (at most 65535)")
    assert done.stdout == ""        # not attached: the compile refused it


# Numbers: bpftrace's rules for $N --------------------------------------------------------------

PRINT_PARAM = 'BEGIN { printf("%d %u\\n", $1, $1); exit(); }'


@pytest.mark.parametrize("param", ["100000000000000000000000000", "0x1ffffffffffffffff", "1_000",
                                   "-9223372036854775809", "12abc", "1e3"])
def test_a_parameter_that_is_no_64_bit_integer_is_refused(param):
    done = run_pybpf(["--emit", "llvm", "-e", 'BEGIN { @x = $1; }', param])
    assert_one_error(done, f'$1 used numerically but given "{param}". Try using str($1).')


@pytest.mark.kernel
@pytest.mark.parametrize("param, printed", [("010", "8 8"), ("0xffffffffffffffff", "-1 18446744073709551615"),
                                            ("18446744073709551615", "-1 18446744073709551615"),
                                            ("-9223372036854775808", "-9223372036854775808 9223372036854775808")])
def test_parameters_read_as_bpftrace_reads_them(param, printed):
    done = run_pybpf(["-e", PRINT_PARAM, param])
    assert (done.returncode, done.stderr) == (0, "") and f"\n{printed}\n" in done.stdout


@pytest.mark.kernel
def test_double_dash_ends_the_options_and_is_not_a_parameter(tmp_path):
    program = 'BEGIN { printf("%d [%s] [%s]\\n", $#, str($1), str($2)); exit(); }'
    done = run_pybpf(["-e", program, "--", "a", "b"])
    assert (done.returncode, done.stderr) == (0, "") and "\n2 [a] [b]\n" in done.stdout
    script = tmp_path / "params.bt"
    script.write_text(program)
    done = run_pybpf([str(script), "--", "-x"])
    assert (done.returncode, done.stderr) == (0, "") and "\n1 [-x] []\n" in done.stdout


# Limits and privileges -------------------------------------------------------------------------

def _with_open_files(limit: int):
    import resource
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.mark.kernel
def test_running_out_of_file_descriptors_says_so_and_not_that_the_verifier_refused():
    program = (f"{OPENAT} {{ @a = count(); }} tracepoint:syscalls:sys_enter_close {{ @b = count(); }} "
               "BEGIN { exit(); }")
    refused = 0
    for limit in range(10, 30):
        done = run_pybpf(["--no-cache", "-e", program], preexec_fn=_with_open_files(limit))
        if done.returncode == 0:
            continue
        refused += 1
        assert "verifier" not in done.stderr
        assert_one_error(done, done.stderr.split("ERROR: ", 1)[1].rstrip("\n"))
        assert "Too many open files" in done.stderr and "ulimit -n" in done.stderr, done.stderr
    assert refused >= 3         # the limits above cut in at the maps, the programs and the attach


UNPRIVILEGED = {
    # uid 0 without any capability: what an ordinary user has, as far as bpf(2) and tracefs go
    "root without capabilities": ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"],
    "nobody": ["--reuid=65534", "--regid=65534", "--clear-groups"],
}


@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
@pytest.mark.parametrize("who", sorted(UNPRIVILEGED))
@pytest.mark.parametrize("args, what", [(["-e", "tracepoint:sched:sched_switch { @ = count(); }"],
                                         "load BPF programs"),
                                        (["--verify-only", "-e", "BEGIN { exit(); }"], "load BPF programs"),
                                        (["-l", "tracepoint:sched:*"], "list kernel probes")])
def test_without_capabilities_the_user_is_told_so_up_front(tmp_path, who, args, what,
                                                             unprivileged_env):
    # a cache folder of its own, though the refusal comes before any cache is read
    done = subprocess.run(["setpriv", *UNPRIVILEGED[who], "--", *PYBPF, *args], capture_output=True,
                          text=True, timeout=30, cwd=tmp_path,
                          env=unprivileged_env({**os.environ, "XDG_CACHE_HOME": str(tmp_path)}))
    assert_one_error(done, f"pybpf needs root, or the CAP_BPF and CAP_PERFMON capabilities, to {what}; "
                           "this process has neither (run it with sudo)")


@pytest.mark.kernel
def test_a_cache_that_cannot_be_written_is_no_error():
    # /proc/self takes no folder: every cache write fails with an OSError, and the run goes on.
    done = run_pybpf(["-e", 'BEGIN { printf("hi\\n"); exit(); }'],
                     env={**os.environ, "XDG_CACHE_HOME": "/proc/self"})
    assert (done.returncode, done.stderr) == (0, "") and "\nhi\n" in done.stdout
