"""Tracepoints whose block reads no `args` attach as raw tracepoints through one program, `probe`
from each point's cookie: they count and name exactly what one perf event per tracepoint does
(--no-grouped-tracepoints). The conftest checks that nothing stays attached."""

import os
import re
import signal
import subprocess

import pytest

from e2e_helpers import READY, Running, named_child

pytestmark = pytest.mark.kernel

COMM = f"pybpfg{os.getpid()}"
MODES = {"grouped": [], "per-tracepoint": ["--no-grouped-tracepoints"]}
FORKS = 4


@pytest.mark.parametrize("mode", MODES)
def test_a_raw_attached_wildcard_counts_each_tracepoint_under_its_name(mode):
    run = Running(MODES[mode] + ["-e", READY + f'tracepoint:sched:sched_process_fork,'
                                 f'tracepoint:sched:sched_process_exit,tracepoint:sched:sched_wakeup_new '
                                 f'/comm == "{COMM}"/ {{ @[probe] = count(); }}'])
    run.wait_for("ready")
    child = named_child(COMM, f"import os\nfor _ in range({FORKS}):\n"
                              "    pid = os.fork()\n"
                              "    if pid == 0: os._exit(0)\n"
                              "    os.waitpid(pid, 0)\n")
    done = subprocess.run(child, capture_output=True, text=True, timeout=30)
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in err, err
    assert done.returncode == 0, done.stderr
    counts = {k: int(v) for k, v in re.findall(r"^@\[(\S+)\]: (\d+)$", out, re.M)}
    assert counts["tracepoint:sched:sched_process_fork"] == FORKS
    assert counts["tracepoint:sched:sched_wakeup_new"] == FORKS
    assert counts["tracepoint:sched:sched_process_exit"] == FORKS + 1    # the children, then itself


def test_the_wildcard_is_one_raw_tracepoint_program_with_a_cookie_per_point():
    from pybpf.compiler import CompileOptions, compile_source
    from pybpf.features import FixedFeatures
    from pybpf.uapi.bpf import BpfProgType

    (program,) = compile_source("tracepoint:sched:sched_process_* { @[probe] = count(); }",
                                options=CompileOptions(features=FixedFeatures(cookies=True))).programs
    assert program.prog_type == BpfProgType.RAW_TRACEPOINT
    assert all(p.attach_kind == "rawtracepoint" for p in program.attach_points)
    assert len({p.cookie for p in program.attach_points}) == len(program.attach_points) > 1
    # reading args keeps the perf events (the record), a program per layout
    compiled = compile_source("tracepoint:sched:sched_wakeup* { @[probe, args.pid] = count(); }",
                              options=CompileOptions(features=FixedFeatures(cookies=True)))
    assert all(p.prog_type == BpfProgType.TRACEPOINT for p in compiled.programs)
