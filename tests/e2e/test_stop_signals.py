"""A stop signal in every phase of the real `pybpf` command: while compiling (the front end, then the
LLVM child), loading, attaching, and printing the maps. Each ends pybpf at once with status 1, with
the LLVM child gone and nothing left in the kernel (bpftool's program and link lists, uprobe_events);
a load or an attach goes no further than where the signal found it. The run phase (status 0, END and
the maps printed) is tests/e2e/test_cleanup.py's. The timings are benchmarks.stop_signals'.

The program: one probe on every syscalls:sys_enter_* tracepoint, each its own program
(--no-shared-syscalls, 360 here), compiled without the cache; the phase is seen through /proc.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from benchmarks.stop_signals import stop_in_phase
from tests.backend.test_emit import exited

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("bpftool") is None,
                                 reason="the kernel's lists are read with bpftool (apt-get install bpftool)")]

UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"
OUR_NAME = re.compile(r"^p\d+$")


def bpftool(*args) -> list[dict]:
    return json.loads(subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True,
                                     check=True).stdout or "[]")


def pybpf_programs() -> set[int]:
    return {p["id"] for p in bpftool("prog", "list") if OUR_NAME.match(p.get("name", ""))}


def held_by_live_processes() -> set[int]:
    """Programs other people's pybpf runs hold meanwhile (this machine is shared)."""
    held = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    held.update(int(line.split()[1]) for line in f if line.startswith("prog_id:"))
        except OSError:
            continue
    return held


def assert_nothing_left(before: set[int]) -> None:
    """No program of ours loaded since `before` is still in the kernel, nor a link to one (polled up
    to 5 s: the kernel frees programs after an RCU grace period)."""
    deadline = time.monotonic() + 5
    while (left := (pybpf_programs() - before) - held_by_live_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"pybpf programs left in the kernel: {left}"
    new = pybpf_programs() - before
    assert not [link for link in bpftool("link", "list") if link.get("prog_id") in new
                and link["prog_id"] not in held_by_live_processes()]
    if os.path.exists(UPROBE_EVENTS):
        with open(UPROBE_EVENTS) as f:
            assert "pybpf" not in f.read()


@pytest.mark.parametrize("phase, sig", [("front end", signal.SIGINT), ("llvm", signal.SIGINT),
                                        ("llvm", signal.SIGTERM)])
def test_a_signal_while_compiling_ends_pybpf_and_its_llvm_child(phase, sig):
    before = pybpf_programs()
    result = stop_in_phase(phase, sig)
    assert result["status"] == 1, result["stderr"]
    assert result["stdout"] == result["stderr"] == ""
    assert result["most_after"]["progs"] == 0              # nothing was loaded after it
    assert exited(result["at_signal"]["llvm_child"])
    assert_nothing_left(before)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_loading_stops_the_load_and_releases_it(sig):
    before = pybpf_programs()
    result = stop_in_phase("load", sig)
    assert result["status"] == 1, result["stderr"]
    assert result["stderr"] == ""
    assert result["most_after"]["progs"] < result["total"]   # the load went no further
    assert result["most_after"]["perf"] == 0                 # nothing attached
    assert_nothing_left(before)


def test_a_signal_while_attaching_stops_attaching_and_detaches_all():
    before = pybpf_programs()
    result = stop_in_phase("attach", signal.SIGINT)
    assert result["status"] == 1, result["stderr"]
    assert result["stdout"] == f"Attaching {result['total'] + 1} probes...\n"   # and END
    assert result["most_after"]["perf"] < result["total"]    # attaching went no further
    assert_nothing_left(before)


def test_a_second_signal_during_the_cleanup_is_quiet_and_leaves_nothing():
    """A signal that comes while the first one's unwinding detaches (~40 ms per tracepoint): the
    handler raises only once, so no second exception surfaces, and everything is released."""
    before = pybpf_programs()
    result = stop_in_phase("attach", signal.SIGINT, again_after=0.05)
    assert result["status"] == 1, result["stderr"]
    assert result["stderr"] == ""
    assert_nothing_left(before)


def test_a_second_signal_while_the_maps_print_cuts_the_print_short():
    before = pybpf_programs()
    result = stop_in_phase("print", signal.SIGINT)
    assert result["status"] == 1, result["stderr"]
    assert result["printed"] < result["total"]
    assert_nothing_left(before)
