"""The whole lifecycle against the kernel: BEGIN, a tracepoint fired by this test, END, every event
kind, the final drain, maps and lost events reported to the output."""

import os
import struct
import time

import pytest
from bpfobj import MapDecl, build_object, program, standard_maps

from pybpf import types as T
from pybpf.program import (START_MAP, AttachPoint, CompiledProgram, EventKind, MapKind, MapSpec, PrintfSpec,
                           BpfProgramSpec)
from pybpf.backend.objspec import parse_object
from pybpf.runtime import maps
from pybpf.runtime.errors import NotSupportedError
from pybpf.runtime.session import Session
from pybpf.uapi.bpf import BpfMapType, BpfProgType

pytestmark = pytest.mark.kernel

PAGE = os.sysconf("SC_PAGE_SIZE")
CALLS = MapSpec("@calls", "calls", MapKind.COUNT, (), T.IntType(8, True))
BEGIN = ("raw_tracepoint/rt_begin", BpfProgType.RAW_TRACEPOINT, AttachPoint("BEGIN", attach_kind="begin"))
END = ("raw_tracepoint/rt_end", BpfProgType.RAW_TRACEPOINT, AttachPoint("END", attach_kind="end"))
GETPPID = AttachPoint("tracepoint", "syscalls:sys_enter_getppid", attach_kind="tracepoint")


class RecordingOutput:
    def __init__(self):
        self.calls = []

    def attached(self, n):
        self.calls.append(("attached", n))

    def printf(self, text):
        self.calls.append(("printf", text))

    def time(self, text):
        self.calls.append(("time", text))

    def map(self, spec, entries):
        self.calls.append(("map", spec.name, entries))

    def maps_at_exit(self, maps):
        self.calls.append(("maps_at_exit", [(spec.name, entries) for spec, entries in maps]))

    def lost(self, n):
        self.calls.append(("lost", n))


def compile_test(tracepoint_body: str, *, ringbuf_size=1 << 16, extra=(), points=(GETPPID,)) -> CompiledProgram:
    """BEGIN printf("begin %d\\n", pid); the getppid tracepoint body; END time("%Y\\n")."""
    bodies = {BEGIN[0]: program(emit=(EventKind.PRINTF, 0)), "tracepoint/rt_getppid": tracepoint_body,
              END[0]: program(emit=(EventKind.TIME, 0))}
    elf = build_object(standard_maps(ringbuf_size) + [MapDecl("calls", BpfMapType.PERCPU_HASH, 8, 8, 16)],
                       bodies)
    return CompiledProgram(
        elf, parse_object(elf),
        (BpfProgramSpec(BEGIN[0], BEGIN[1], (BEGIN[2],)),
         BpfProgramSpec("tracepoint/rt_getppid", BpfProgType.TRACEPOINT, points),
         BpfProgramSpec(END[0], END[1], (END[2],))) + extra,
        (CALLS,), printfs=(PrintfSpec("begin %d\n", (T.IntType(8, True),)),), time_formats=("%Y\n",))


def counting(event: EventKind) -> str:
    return program(count="calls", emit=(event, 0), only_pid=os.getpid())


def test_lifecycle_begin_events_exit_end_maps():
    output = RecordingOutput()
    with Session(compile_test(counting(EventKind.EXIT)), output) as session:
        session.start()
        start_ns = struct.unpack("<Q", maps.lookup(session.loaded.map_fds[START_MAP], bytes(4), 8))[0]
        assert abs(time.monotonic_ns() - start_ns) < 1e9
        assert session.poll(0) is True
        for _ in range(3):
            os.getppid()
        deadline = time.monotonic() + 5
        while session.poll(0.1) and time.monotonic() < deadline:
            pass
        assert session.exited
        session.stop()
        session.stop()                       # idempotent
    assert output.calls == [
        ("attached", 3),
        ("printf", f"begin {os.getpid()}\n"),
        ("time", time.strftime("%Y\n")),
        ("maps_at_exit", [("@calls", [((), 3)])]),
    ]


@pytest.mark.parametrize("event,expected", [(EventKind.CLEAR, []), (EventKind.ZERO, [((), 0)])])
def test_clear_and_zero_events(event, expected):
    output = RecordingOutput()
    with Session(compile_test(counting(event)), output) as session:
        session.start()
        os.getppid()
        session.poll(1.0)
        session.stop()
    assert output.calls[-1] == ("maps_at_exit", [("@calls", expected)])


def test_print_event_prints_the_map_now():
    output = RecordingOutput()
    with Session(compile_test(counting(EventKind.PRINT)), output) as session:
        session.start()
        os.getppid()
        deadline = time.monotonic() + 5         # events arrive in batches: poll until it shows
        while output.calls[-1][0] != "map" and time.monotonic() < deadline:
            session.poll(0.5)
        assert output.calls[-1] == ("map", "@calls", [((), 1)])
        session.stop()


def test_final_drain_and_lost_events():
    output = RecordingOutput()
    fits = PAGE // 24 - 1                    # the BEGIN record takes one slot
    with Session(compile_test(counting(EventKind.PRINTF), ringbuf_size=PAGE), output) as session:
        session.start()
        for _ in range(fits + 25):
            os.getppid()
        session.stop()                       # never polled: the drain thread and the final drain
    printed = [c for c in output.calls if c[0] in ("printf", "time")]
    lost = output.calls[-1][1] if output.calls[-1][0] == "lost" else 0
    # Every record is either printed or counted lost: begin, the getppid ones, END's time. The
    # drain thread empties the ring while it fills, so at most the 25 that overflow a ring
    # nobody empties are lost.
    assert len(printed) + lost == 1 + fits + 25 + 1
    assert lost <= 25
    assert printed[0] == ("printf", f"begin {os.getpid()}\n")
    assert printed[-1] == ("time", time.strftime("%Y\n"))


def test_a_long_attach_reports_progress_on_the_warning_channel(monkeypatch):
    # past PROGRESS_EVERY_S of attaching (here at once), a line per interval: done of the total
    from pybpf.runtime import session as session_module
    monkeypatch.setattr(session_module, "PROGRESS_EVERY_S", 0)
    points = tuple(AttachPoint("tracepoint", f"syscalls:sys_enter_{name}", attach_kind="tracepoint")
                   for name in ("getppid", "getpid", "gettid"))
    lines = []
    with Session(compile_test(counting(EventKind.EXIT), points=points), RecordingOutput(), lines.append) as s:
        s.start()
        s.stop()
    assert lines == ["Attaching 3 probes... 1/3", "Attaching 3 probes... 2/3"]


def test_failed_attach_releases_everything():
    missing = AttachPoint("tracepoint", "no:such", attach_kind="tracepoint")
    compiled = compile_test(counting(EventKind.EXIT), points=(GETPPID, missing))
    output = RecordingOutput()
    session = Session(compiled, output)
    with pytest.raises(NotSupportedError):
        session.start()
    session.stop()                           # nothing to print, nothing left to release
    assert output.calls == [("attached", 4)]
