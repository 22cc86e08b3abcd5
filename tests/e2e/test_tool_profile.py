"""pybpf's profile (pybpf.tools.profile) on a CPU-bound program of ours (test_stacks.py's spin
program): its hot function in the stacks BCC's way, folded lines for flame graphs, user or kernel
stacks only, and the header and duration."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from test_stacks import assert_hot_on_top, spin  # noqa: F401 (spin: the fixture, named stkspin)

TOOL = [sys.executable, "-m", "pybpf.tools.profile"]


def profile(spin: str, *options: str) -> tuple[int, str]:
    """Profile the spin program (-p its pid) for 2 s while it runs -> (its pid, stdout). At 999 Hz:
    in this VM a busy machine's cpu-clock samples go mostly to other processes (bpftrace's too)."""
    child = subprocess.Popen([spin, "30"])       # killed when the profile ends
    try:
        result = subprocess.run(TOOL + ["-F", "999", "-p", str(child.pid), *options, "2"],
                                capture_output=True, text=True, timeout=60)
    finally:
        child.kill()
        child.wait()
    assert result.returncode == 0, result.stderr
    return child.pid, result.stdout


def stacks(out: str) -> list[tuple[list[str], str, int]]:
    """BCC's multi-line report -> [(frames, 'comm (pid)', count)], frames innermost first."""
    found = []
    for block in out.split("\n\n"):
        lines = [line.strip() for line in block.strip("\n").splitlines()]
        if len(lines) >= 2 and lines[-2].startswith("- "):
            found.append((lines[:-2], lines[-2][1:].strip(), int(lines[-1])))
    return found


def test_help_prints_bccs_options():
    result = subprocess.run(TOOL + ["-h"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: profile [-h] [-p PID | -L TID] [-U | -K] [-F FREQUENCY]")
    for text in ("-f, --folded", "duration of trace, in seconds", "./profile -f 5"):
        assert text in result.stdout


@pytest.mark.kernel
def test_the_hot_function_and_its_callers_appear(spin):
    pid, out = profile(spin)
    lines = out.splitlines()
    assert lines[0] == f"Sampling at 999 Hertz of PID [{pid}] by user + kernel stack for 2 secs."
    found = stacks(out)
    assert found and all(who == f"stkspin ({pid})" for _, who, _ in found), out
    hot = [frames for frames, _, _ in found if frames[:2] == ["spin_hot_leaf", "spin_caller"]]
    assert hot and all("main" in frames for frames in hot), out
    # least sampled first, as BCC; the kernel's frames (a getppid) above the user ones
    assert [n for _, _, n in found] == sorted(n for _, _, n in found)
    in_kernel = [f for f, _, _ in found if "entry_SYSCALL_64_after_hwframe" in f]
    assert all(f.index("entry_SYSCALL_64_after_hwframe") < f.index("main") for f in in_kernel)


@pytest.mark.kernel
def test_f_prints_folded_lines_with_the_hot_function_on_top(spin):
    _, out = profile(spin, "-f")
    folded = {}
    for line in out.splitlines():
        stack, count = line.rsplit(" ", 1)
        folded[stack] = int(count)
    assert folded, out
    assert all(stack.startswith("stkspin;") for stack in folded), folded
    assert_hot_on_top(folded)
    assert any(re.search(r";main;spin_caller;spin_hot_leaf$", s) for s in folded), folded


@pytest.mark.kernel
def test_U_and_K_keep_one_side(spin):
    _, out = profile(spin, "-U", "-f")
    assert "spin_hot_leaf" in out and "do_syscall_64" not in out
    _, out = profile(spin, "-K", "-f", "-a")
    assert "spin_hot_leaf" not in out
    # samples in user mode have no kernel stack: their lines are the name alone
    assert all(frame.endswith("_[k]") for line in out.splitlines()
               for frame in line.rsplit(" ", 1)[0].split(";")[1:]), out


@pytest.mark.kernel
def test_the_console_script_is_the_same_tool():
    script = shutil.which("pybpf-profile", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("pybpf is not installed with its console scripts here")
    # every process, kernel stacks only (no process's symbols to read)
    result = subprocess.run([script, "-K", "1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Sampling at 49 Hertz of all threads by kernel stack for 1 "
                                    "secs.\n")
