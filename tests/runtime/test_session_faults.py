"""An exception inside the runtime, while probes are attached or while the maps print at exit, still
releases everything: the exception reaches the host, and the session's fds, mappings, programs, maps
and perf events are gone (this file's conftest checks the fds and mappings after each test; here the
kernel ids too). The output object is the injection point: no hook exists in production code."""

import os
import time

import pytest

from pybpf.compiler import CompileOptions, compile_source
from pybpf.runtime.errors import BpfError
from pybpf.runtime.output import TextOutput
from pybpf.runtime.session import Session
from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import BpfCmd, GetIdAttr

pytestmark = pytest.mark.kernel


class Injected(Exception):
    pass


class FailingOutput(TextOutput):
    def __init__(self, fail_in: str):
        super().__init__(open(os.devnull, "w"))
        self.fail_in = fail_in

    def printf(self, text):
        if self.fail_in == "printf":
            raise Injected("printf")

    def map(self, spec, entries):
        if self.fail_in == "map":
            raise Injected("map")


def session_ids(session: Session) -> list[tuple[int, int]]:
    """(GET_FD_BY_ID command, id) of every program and map the session loaded."""
    found = []
    for fds, cmd in ((session.loaded.prog_fds, BpfCmd.PROG_GET_FD_BY_ID),
                     (session.loaded.map_fds, BpfCmd.MAP_GET_FD_BY_ID)):
        for fd in fds.values():
            with open(f"/proc/self/fdinfo/{fd}") as f:
                line = next(ln for ln in f if ln.startswith(("prog_id:", "map_id:")))
            found.append((cmd, int(line.split()[1])))
    return found


def assert_gone(ids, timeout=2.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for cmd, object_id in ids:
            try:
                os.close(bpf(cmd, GetIdAttr(start_id=object_id)))
                alive.append(object_id)
            except BpfError:
                pass
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not alive, f"ids still loaded: {alive}"


def test_exception_in_printf_while_attached_releases_everything():
    compiled = compile_source(r'tracepoint:syscalls:sys_enter_getppid /pid == $1/ { @n = count(); '
                              r'printf("x\n"); }', options=CompileOptions(params=(str(os.getpid()),)))
    with pytest.raises(Injected):
        with Session(compiled, FailingOutput("printf")) as session:
            session.start()
            ids = session_ids(session)
            os.getppid()
            deadline = time.monotonic() + 5
            while session.poll(0.05) and time.monotonic() < deadline:
                pass
    assert session.loaded is None
    assert_gone(ids)


def test_exception_while_printing_maps_at_exit_releases_everything():
    compiled = compile_source("BEGIN { @a[1] = 1; @b = count(); exit(); }")
    session = Session(compiled, FailingOutput("map"))
    session.start()
    ids = session_ids(session)
    assert not session.poll(0.5)              # exit() ran
    with pytest.raises(Injected):
        session.stop()                        # detaches first, then fails printing @a
    assert session.loaded is None
    assert_gone(ids)
