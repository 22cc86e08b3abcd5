"""kstack and ustack through the command: a CPU-bound program of ours sampled by `profile`, its own
function names in the user stacks and the kernel's in the kernel stacks, while it runs and after it
has exited."""

import json
import re
import shutil
import subprocess
import time

import pytest

from e2e_helpers import READY, Running, run_pybpf, trace

SPIN_C = r"""
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
volatile unsigned long sink;
__attribute__((noinline)) void spin_hot_leaf(void) { for (int i = 0; i < 1000000; i++) sink += i; }
__attribute__((noinline)) void spin_caller(void) { spin_hot_leaf(); }
__attribute__((noinline)) void spin_in_kernel(void) { for (int i = 0; i < 2000; i++) getppid(); }
int main(int argc, char **argv) {
    time_t end = time(NULL) + atoi(argv[1]);
    while (time(NULL) < end) { spin_caller(); spin_in_kernel(); }
    return 0;
}
"""

SCRIPT = READY + 'profile:hz:99 /comm == "stkspin"/ { @u[ustack] = count(); @k[kstack] = count(); }'


@pytest.fixture
def spin(compile_c, tmp_path):
    built = compile_c(SPIN_C, "-O0", "-fno-omit-frame-pointer")
    path = tmp_path / "stkspin"          # its comm, for the predicate
    shutil.copy(built, path)
    return str(path)


def stacks_of(out: str, name: str) -> list[list[str]]:
    """The frames of each `@name[...]: N` entry, innermost first."""
    return [[line.strip() for line in block.split("\n") if line.strip()]
            for block in re.findall(rf"^@{name}\[(.*?)\]: \d+$", out, re.M | re.S)]


def profile_spin(spin: str, exit_first: bool, script: str = SCRIPT) -> str:
    run = Running(["-e", script])
    run.wait_for("ready")
    child = subprocess.Popen([spin, "3"])
    if exit_first:
        # the process is gone before the maps print: its mappings were kept while it ran
        child.wait(timeout=30)
        time.sleep(1.5)
    else:
        time.sleep(2)
    out, err, code = run.stop()
    child.wait(timeout=30)
    assert code == 0, err
    return out


def assert_named_frames(out: str) -> None:
    user = stacks_of(out, "u")
    assert user, out
    hot = [frames for frames in user if frames and frames[0].startswith("spin_hot_leaf+")]
    assert hot, out
    assert any(len(f) > 1 and f[1].startswith("spin_caller+") for f in hot), out
    assert any(frames[-1].startswith(("main+", "__libc_start")) or "main+" in " ".join(frames)
               for frames in hot), out
    kernel = [frames for frames in stacks_of(out, "k") if frames]
    assert any(any(f.startswith("do_syscall_64+") for f in frames) for frames in kernel), out
    for frames in kernel:
        assert all(re.fullmatch(r"\w[\w.]*\+\d+", f) for f in frames), frames


@pytest.mark.kernel
def test_user_and_kernel_stacks_while_running(spin):
    assert_named_frames(profile_spin(spin, exit_first=False))


@pytest.mark.kernel
def test_user_stacks_resolve_after_the_program_exited(spin):
    assert_named_frames(profile_spin(spin, exit_first=True))


@pytest.fixture
def spin_minidebuginfo(spin, strip_to_minidebuginfo):
    strip_to_minidebuginfo(spin)
    return spin


@pytest.mark.kernel
def test_minidebuginfo_names_frames_usym_and_uprobes(spin_minidebuginfo):
    """The function names of a binary whose only symbols are its MiniDebugInfo: in ustack, in
    usym, and as uprobe targets."""
    out = profile_spin(spin_minidebuginfo, exit_first=False, script=SCRIPT + (
        f' uprobe:{spin_minidebuginfo}:spin_caller {{ @sym[usym(ctx->ip)] = count(); }}'))
    assert_named_frames(out)
    assert re.search(r"^@sym\[spin_caller\]: \d+$", out, re.M), out


TAKE_C = r"""
#include <unistd.h>
__attribute__((noinline)) void target_function(void) { }
__attribute__((noinline)) void take_pointer(void (*f)(void)) { f(); }
int main(void) { take_pointer(target_function); sleep(2); return 0; }
"""


@pytest.mark.kernel
def test_usym_names_a_function_of_the_traced_process(compile_c):
    prog = compile_c(TAKE_C, "-O0")
    out = trace(["-e", READY + f'uprobe:{prog}:take_pointer {{ printf("%s|%s\\n", usym(arg0), '
                 'usym(1)); }'], [prog])
    assert "target_function|0x1\n" in out


@pytest.mark.kernel
def test_kaddr_and_ksym_agree_with_kallsyms():
    with open("/proc/kallsyms") as f:
        addr = next(int(p[0], 16) for p in map(str.split, f) if p[2] == "do_nanosleep")
    r = run_pybpf(["-e", 'BEGIN { printf("%x %s %s %s\\n", kaddr("do_nanosleep"), '
                   'ksym(kaddr("do_nanosleep") + 3), ksym(1), ksym(0)); exit(); }'])
    assert r.returncode == 0, r.stderr
    # no function holds 1 nor 0: bpftrace streams the address as a void*, 0 without its 0x
    assert f"{addr:x} do_nanosleep 0x1 0\n" in r.stdout


@pytest.mark.kernel
def test_ksym_in_json_is_the_name_or_the_address_as_a_string():
    r = run_pybpf(["-q", "-f", "json", "-e", 'BEGIN { @[ksym(kaddr("do_nanosleep"))] = 1; '
                   "@[ksym(0)] = 2; print(ksym(1)); exit(); }"])
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert records == [{"type": "value", "data": "0x1"},
                       {"type": "map", "data": {"@": {"do_nanosleep": 1, "0": 2}}}]


def assert_hot_on_top(folded: dict[str, int]) -> None:
    """Of folded `a;b;c N` lines, the top frame with the most samples is the spin's hot leaf."""
    on_top: dict[str, int] = {}
    for stack, count in folded.items():
        top = stack.split(";")[-1]
        on_top[top] = on_top.get(top, 0) + count
    assert max(on_top, key=on_top.get) == "spin_hot_leaf", on_top


@pytest.mark.kernel
def test_folded_output_for_a_flame_graph(spin):
    out = trace(["-f", "folded", "-e", READY + 'profile:hz:99 /comm == "stkspin"/ '
                 '{ @[ustack, kstack, comm] = count(); }'], [spin, "2"])
    folded = {}
    for line in out.splitlines():
        stack, _, count = line.rpartition(" ")
        if ";" in stack:                     # the folded lines: `a;b;c N`
            folded[stack] = int(count)
    assert folded, out
    assert all(stack.startswith("stkspin;") for stack in folded), folded
    # the hot function is on top of the most sampled stacks: its caller below it, main further
    assert_hot_on_top(folded)
    hot = [s.split(";") for s in folded if s.endswith(";spin_caller;spin_hot_leaf")]
    assert hot and all("main" in frames for frames in hot), folded
