"""cat(), debugf(), hist(n, k) and uaddr() end to end, each against what bpftrace 0.26's stdlib
reference says of it (and bpftrace 0.17's output where it has the function)."""

import json
import os

import pytest

from e2e_helpers import run_pybpf, setting_by


def test_cat_prints_the_file_the_script_names(tmp_path):
    # bpftrace: cat(fmt, args...) dumps the named file to stdout, in user space; a file that
    # cannot be opened is an error on stderr. 0.17 prints the same.
    f = tmp_path / "catme"
    f.write_text("first\nsecond")
    r = run_pybpf(["-e", f'BEGIN {{ cat("{tmp_path}/%s", "catme"); printf("|\\n"); '
                         f'cat("{tmp_path}/missing"); exit(); }}'])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:3] == ["first", "second|"]
    assert f"ERROR: failed to open file '{tmp_path}/missing': No such file or directory" in r.stderr


@pytest.mark.parametrize("how", ["config", "BPFTRACE_MAX_CAT_BYTES", "BPFTRACE_CAT_BYTES_MAX"])
def test_cat_prints_at_most_max_cat_bytes_as_json(tmp_path, how):
    f = tmp_path / "catme"
    f.write_text("0123456789")
    env, config = setting_by(how, "max_cat_bytes", "4")
    r = run_pybpf(["-f", "json", "-e", config + f'BEGIN {{ cat("{f}"); exit(); }}'], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[1]) == {"type": "cat", "data": "0123"}


def test_cat_of_a_fifo_without_writer_does_not_block(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run_pybpf(["-e", f'BEGIN {{ cat("{fifo}"); printf("after\\n"); exit(); }}'], timeout=20)
    assert r.returncode == 0 and "after" in r.stdout, r.stderr


TRACE = "/sys/kernel/tracing/trace"


@pytest.mark.kernel
def test_debugf_writes_to_the_trace_buffer():
    # bpftrace 0.26: debugf() formats with bpf_trace_printk (the kernel), the text goes to
    # trace_pipe; it warns that it is not for production.
    token = f"pybpf-debugf-{os.getpid()}"
    r = run_pybpf(["-e", f'BEGIN {{ $s = "{token}"; debugf("dbg %s %d %5x|", $s, -42, 255); '
                         'exit(); }'])
    assert r.returncode == 0, r.stderr
    assert "WARNING: The debugf() builtin is not recommended for production use" in r.stderr
    with open(TRACE) as f:
        lines = [line for line in f if token in line]
    assert lines and lines[-1].rstrip("\n").endswith(f"bpf_trace_printk: dbg {token} -42    ff|")


@pytest.mark.parametrize("source, message", [
    ('BEGIN { debugf("%.3d", 1); }', "debugf: the kernel's bpf_trace_vprintk does not take '%.3d'"),
    ('BEGIN { debugf("%s", probe); }', "debugf: %s takes a string only"),
    ('BEGIN { debugf("' + "%d" * 13 + '", ' + ", ".join("1" * 13) + '); }',
     "debugf: too many arguments (13, at most 12)"),
])
def test_debugf_errors(source, message):
    r = run_pybpf(["--verify-only", "-e", source])
    assert r.returncode != 0 and message in r.stderr.splitlines()[0], r.stderr


@pytest.mark.kernel
def test_hist_with_k_sub_buckets_as_bpftrace_026_prints_it():
    # bpftrace 0.26: hist(n, k) has 2^k buckets per power of two; buckets 1..2^(k+1) hold one
    # value each ([0], [1], ...), the next are [lo, hi) with K/M suffixes on powers of 1024.
    r = run_pybpf(["-e", 'BEGIN { @h = hist(3, 1); @h = hist(5, 1); @h = hist(5, 1); '
                         '@h = hist(3000, 1); @n = hist(-7, 3); exit(); }'])
    assert r.returncode == 0, r.stderr
    text = r.stdout.split("@h: \n", 1)[1].split("\n\n", 1)[0].splitlines()
    labels = [line[:16].rstrip() for line in text]
    assert labels[:4] == ["[3]", "[4, 6)", "[6, 8)", "[8, 12)"]
    assert labels[-1] == "[2K, 3K)" and text[-1].split()[2] == "1"
    assert text[1].split()[2] == "2" and text[1].endswith("@" * 52 + "|")
    assert "@n: \n(..., 0)               1 |" in r.stdout
    j = run_pybpf(["-f", "json", "-e", 'BEGIN { @h = hist(5, 2); @h = hist(1000, 2); exit(); }'])
    hist = [json.loads(line) for line in j.stdout.splitlines()][-1]["data"]["@h"]
    assert hist[0] == {"min": 5, "max": 5, "count": 1}
    assert hist[-1] == {"min": 896, "max": 1023, "count": 1}


@pytest.mark.parametrize("source, message", [
    ("BEGIN { @h = hist(1, 6); }", "hist: bits 6 must be 0..5"),
    ("BEGIN { @h = hist(1, 1); @h = hist(2, 2); }", "Different bits in a single hist unsupported: @h"),
    ("BEGIN { @h = hist(1, 2, 3); }", "hist() requires"),
])
def test_hist_k_errors(source, message):
    r = run_pybpf(["--verify-only", "-e", source])
    assert r.returncode != 0 and message in r.stderr.splitlines()[0], r.stderr


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["config", "BPFTRACE_STACK_MODE"])
def test_stack_mode_is_the_mode_of_stacks_that_name_none(how):
    # bpftrace 0.26: stack_mode (bpftrace, perf, raw) is how kstack/ustack print; a call's own
    # mode wins.
    env, config = setting_by(how, "stack_mode", "raw")
    r = run_pybpf(["-e", config + 'BEGIN { printf("%s|%s|\\n", kstack(2), kstack(bpftrace, 1)); '
                                  'exit(); }'], env=env)
    assert r.returncode == 0, r.stderr
    raw, named = r.stdout.split("\n", 1)[1].split("|")[:2]
    frames = [line.strip() for line in raw.split("\n")[1:] if line.strip()]
    assert frames and all(int(frame, 16) for frame in frames), raw
    assert "+" in named, named
