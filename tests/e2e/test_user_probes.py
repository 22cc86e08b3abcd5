"""User-space probes and sampling through the command: uprobe/uretprobe on a library function
and profile sampling on every CPU."""

import re
import subprocess

import pytest

from e2e_helpers import READY, Running, named_child, run_pybpf

CALL_GETPID_N_TIMES = ('libc = ctypes.CDLL("libc.so.6")\n'
                       "for _ in range(int(sys.argv[2])):\n    libc.getpid()\n")


@pytest.mark.kernel
def test_uprobe_and_uretprobe_on_libc():
    run = Running(["-e", READY + 'uprobe:libc:getpid /comm == "pybpfuprobe"/ { @[func] = count(); } '
                   'uretprobe:libc:getpid /comm == "pybpfuprobe"/ { @pids[retval] = count(); }'])
    run.wait_for("ready")
    child = subprocess.run(named_child("pybpfuprobe", CALL_GETPID_N_TIMES, 40), timeout=30)
    assert child.returncode == 0
    out, err, code = run.stop()
    assert code == 0, err
    calls = int(re.search(r"^@\[getpid\]: (\d+)$", out, re.M)[1])
    assert calls >= 40                      # ctypes calls, plus whatever the interpreter made
    pids = dict(re.findall(r"^@pids\[(\d+)\]: (\d+)$", out, re.M))
    assert len(pids) == 1 and int(next(iter(pids.values()))) == calls   # one pid, every return


@pytest.mark.kernel
def test_profile_samples_every_cpu_it_runs_on():
    r = run_pybpf(["-e", "profile:hz:199 { @samples = count(); } interval:ms:500 { exit(); }"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Attaching 2 probes...")
    assert int(re.search(r"^@samples: (\d+)$", r.stdout, re.M)[1]) > 10


def test_listing_library_functions():
    r = run_pybpf(["-l", "uprobe:libc:getpi*"])
    assert r.returncode == 0, r.stderr
    assert any(line.endswith(":getpid") for line in r.stdout.splitlines())
