"""The `-f json` output of the values pybpf renders in user space (formatted values, strings, stacks,
symbols), as bpftrace 0.26's src/output/json.cpp writes them: a `value` record for print(v), a JSON
string for each, map keys joined with `,` (docs/language.md, JSON output). Their text output is
tested beside each function (test_functions.py, test_stacks.py)."""

import json
import os
import pwd
import time

import pytest

from e2e_helpers import run_pybpf, trace

# The process lives on after its calls, so that its symbols are read while it still runs.
PROG = r"""
#include <unistd.h>
__attribute__((noinline)) int leaf(int i) { __asm__ volatile(""); return i + 1; }
__attribute__((noinline)) int caller(int i) { return leaf(i) * 2; }
int main(void) { int r = caller(1); sleep(2); return r == 4 ? 0 : 1; }
"""


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line]


@pytest.mark.kernel
def test_formatted_values_are_json_strings():
    done = run_pybpf(["-q", "-f", "json", "-e",
                      'BEGIN { print(strftime("%Y", nsecs)); print(strerror(2)); print(str(comm, 5)); '
                      "print(username); print(macaddr(0x665544332211)); print(ntop(0x0100007f)); "
                      'time("%Y|\\n"); @m[macaddr(0x665544332211), ntop(2, 0x0100007f)] = 1; exit(); }'])
    assert done.returncode == 0, done.stderr
    year = time.strftime("%Y")
    assert _records(done.stdout) == [
        {"type": "value", "data": year},
        {"type": "value", "data": "No such file or directory"},
        {"type": "value", "data": "pyth"},              # str(x, 5): four characters and the NUL
        {"type": "value", "data": pwd.getpwuid(os.geteuid()).pw_name},
        {"type": "value", "data": "11:22:33:44:55:66"},
        {"type": "value", "data": "127.0.0.1"},
        {"type": "time", "data": f"{year}|\n"},
        {"type": "map", "data": {"@m": {"11:22:33:44:55:66,127.0.0.1": 1}}}]


@pytest.mark.kernel
def test_cgroup_path_is_a_json_string():
    # BEGIN runs in pybpf's own task, which is in the cgroup this test runs in
    with open("/proc/self/cgroup") as f:
        v2 = next(line.split("::", 1)[1].strip() for line in f if line.startswith("0::"))
    done = run_pybpf(["-q", "-f", "json", "-e", 'BEGIN { print(cgroup_path(cgroup, "unif*")); exit(); }'])
    assert done.returncode == 0, done.stderr
    assert _records(done.stdout) == [{"type": "value", "data": f"unified:{v2}"}]


@pytest.mark.kernel
def test_func_symbols_and_stacks_in_json(compile_c):
    prog = compile_c(PROG, "-fno-omit-frame-pointer")
    out = trace(["-f", "json", "-e", 'BEGIN { print(kstack(1)); print(kstack); printf("ready\\n"); } '
                 f"uprobe:{prog}:leaf {{ @f[func] = count(); print(usym(reg(\"ip\"))); "
                 "print(ustack(2)); print(ustack); }"], [prog], until='"data": "leaf"')
    records = [r for r in _records(out) if r["type"] in ("map", "value")]
    kernel_frame, kernel_stack, leaf, user_frames, user_stack, funcs = records
    # a stack is its text, one frame a line, as a JSON string: BEGIN's kernel stack starts at the
    # program bpf_prog_test_run ran
    assert kernel_frame["type"] == "value" and kernel_frame["data"].startswith("\n\tbpf_prog_")
    assert kernel_frame["data"].count("\n") == 2
    # the whole stack goes down to the bpf() syscall pybpf made to run BEGIN
    assert kernel_stack["data"].startswith("\n\tbpf_prog_") and "\n\t__sys_bpf+" in kernel_stack["data"]
    assert leaf == {"type": "value", "data": "leaf"}
    assert user_frames["data"].startswith("\n\tleaf+") and user_frames["data"].count("\n") == 3
    assert user_stack["data"].startswith("\n\tleaf+") and user_stack["data"].count("\n") >= 3
    assert funcs == {"type": "map", "data": {"@f": {"leaf": 1}}}
