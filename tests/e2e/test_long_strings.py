"""Strings past the BPF stack: many str() in one printf, and max_strlen / BPFTRACE_MAX_STRLEN
(bpftrace 0.17: BPFTRACE_STRLEN) beyond the 200 bytes bpftrace 0.17 allows. Buffers the 512-byte
stack cannot hold live in a per-CPU scratch map (docs/language.md, Strings)."""

import os

import pytest

from e2e_helpers import READY, named_child, run_pybpf, setting_by, trace_line

OPEN_PATHS = "import sys\nfor p in sys.argv[2:]:\n    try:\n        open(p).close()\n    except OSError:\n        pass\n"
LONG_PATH = "/tmp/pybpf-long-" + "d" * 600 + "-end"      # ENOENT; openat still sees it whole


def opened_by(script: str, comm: str, path: str, env=None, config: str = "") -> str:
    line = trace_line(["-e", config + READY + script],
                      named_child(comm, OPEN_PATHS, path), "|", env=env)
    return line.rstrip("\n")


@pytest.mark.kernel
def test_six_str_in_one_printf():
    # bpftrace 0.17 refuses this for stack space (LLVM: "BPF stack limit of 512 bytes is
    # exceeded"); each str() is 64 bytes and the record holds all six.
    line = opened_by('t:syscalls:sys_enter_openat /comm == "pybpfsixstr"/ { '
                     'printf("%s|%s|%s|%s|%s|%s|%s\\n", str(args.filename), str(args.filename), '
                     'str(args.filename, 6), str(args.filename), str(args.filename), '
                     'str(args.filename), comm); }', "pybpfsixstr", "/tmp/pybpf-six-strings")
    fields = line.split("|")
    assert fields == ["/tmp/pybpf-six-strings"] * 2 + ["/tmp/"] + \
        ["/tmp/pybpf-six-strings"] * 3 + ["pybpfsixstr"]


STR_OF_FILENAME = ('t:syscalls:sys_enter_openat /comm == "pybpflongstr"/ { '
                   '$s = str(args.filename); printf("%s|%d\\n", $s, strncmp($s, "/tmp/pybpf-long-", '
                   '16)); }')


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["config", "BPFTRACE_MAX_STRLEN", "BPFTRACE_STRLEN"])
def test_max_strlen_reads_long_strings(how):
    # bpftrace 0.26: max_strlen is the size of str() (NUL included), set by the config block or
    # BPFTRACE_MAX_STRLEN; 0.17 called it BPFTRACE_STRLEN and refused more than 200.
    env, config = setting_by(how, "max_strlen", "1024")
    line = opened_by(STR_OF_FILENAME, "pybpflongstr", LONG_PATH, env, config)
    assert line == LONG_PATH + "|0"


@pytest.mark.kernel
def test_default_string_is_63_characters():
    line = opened_by(STR_OF_FILENAME, "pybpflongstr", LONG_PATH)
    assert line == LONG_PATH[:63] + "|0"


@pytest.mark.kernel
def test_long_string_as_map_value_and_key():
    # A map key stays at most 256 bytes (pybpf's limit; the kernel's is 512): str(x, n) cuts it.
    r = run_pybpf(["-e", 'config = { max_strlen = 700 } BEGIN { @k[str($1, 200)] = count(); '
                   '@v = str($1); exit(); }', LONG_PATH])
    assert r.returncode == 0, r.stderr
    assert f"@k[{LONG_PATH[:199]}]: 1" in r.stdout and f"@v: {LONG_PATH}" in r.stdout


@pytest.mark.parametrize("setting, message", [
    ("config = { max_strlen = 0 } ", "stdin:1:12-26: ERROR: max_strlen must be between 1 and 8192, got 0"),
    ("config = { max_strlen = 9000 } ",
     "stdin:1:12-29: ERROR: max_strlen must be between 1 and 8192, got 9000"),
])
def test_max_strlen_bounds(setting, message):
    r = run_pybpf(["--verify-only", "-e", setting + 'BEGIN { printf("%s\\n", str(0)); }'])
    assert r.returncode != 0 and r.stderr.splitlines()[0] == message, r.stderr


def test_max_strlen_environment_bounds():
    r = run_pybpf(["--verify-only", "-e", 'BEGIN { printf("%s\\n", str(0)); }'],
                  env=dict(os.environ, BPFTRACE_STRLEN="100000"))
    assert r.returncode != 0
    assert "BPFTRACE_STRLEN: expecting a number from 1 to 8192, got 100000" in r.stderr
