"""Programs on counting perf events (software:, hardware:): one event per online CPU, the program run
every sample_period events; hardware events where the machine has no PMU refused in one line."""

import errno
import importlib
import mmap
import os

import pytest
from bpfobj import count, load_one, program

from pybpf import providers
from pybpf.program import AttachPoint, PerfEvent
from pybpf.runtime.attach import ATTACHERS, TOGETHER, attach
from pybpf.runtime.attach.perf_event import online_cpus
from pybpf.runtime.loader import ProbeUnavailableError
from pybpf.uapi.bpf import BpfProgType
from pybpf.uapi.perf_event import PerfHwId, PerfSwId, PerfType

PAGES = 200
HAS_PMU = os.path.exists("/sys/bus/event_source/devices/cpu")


def counter(provider: str, target: str, event: PerfEvent) -> AttachPoint:
    return AttachPoint(provider, target, attach_kind="perf_counter", perf_event=event)


def touch_fresh_pages(n: int) -> None:
    """Write one byte in each of n pages never touched before: one page fault each (no huge pages,
    which would fault 512 at once)."""
    area = mmap.mmap(-1, n * mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.madvise(mmap.MADV_NOHUGEPAGE)
    for page in range(n):
        area[page * mmap.PAGESIZE] = 1
    area.close()


def test_every_provider_attaches_through_a_module_here():
    kinds = {p.attach_kind for p in providers.PROVIDERS}
    assert kinds <= set(ATTACHERS)
    for name in set(ATTACHERS.values()):        # imported when a point of its kind attaches
        assert callable(importlib.import_module(f"pybpf.runtime.attach.{name}").attach)
    for kind, name in TOGETHER.items():         # a program's points at once, by the module's kinds
        module = importlib.import_module(f"pybpf.runtime.attach.{name}")
        assert kind in module.KINDS and callable(module.attach_points)


@pytest.mark.kernel
def test_page_faults_counted_one_by_one():
    obj, prog_fd = load_one("perf_event/rt_faults", BpfProgType.PERF_EVENT,
                            program(count="counts", only_pid=os.getpid()))
    with obj:
        attachment = attach(prog_fd, counter("software", "page-faults:1",
                                             PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, 1)))
        assert len(attachment.fds) == len(online_cpus())
        try:
            touch_fresh_pages(PAGES)
        finally:
            attachment.close()
        faults = count(obj)
        assert PAGES <= faults <= PAGES + 50, faults      # the interpreter may fault a few of its own
        touch_fresh_pages(10)
        assert count(obj) == faults                       # detached


@pytest.mark.kernel
def test_a_sample_period_runs_the_program_every_period_events():
    obj, prog_fd = load_one("perf_event/rt_faults", BpfProgType.PERF_EVENT,
                            program(count="counts", only_pid=os.getpid()))
    with obj:
        attachment = attach(prog_fd, counter("software", "page-faults:50",
                                             PerfEvent(PerfType.SOFTWARE, PerfSwId.PAGE_FAULTS, 50)))
        try:
            touch_fresh_pages(PAGES)
        finally:
            attachment.close()
        assert PAGES // 50 - len(online_cpus()) <= count(obj) <= PAGES // 50 + 2, count(obj)


@pytest.mark.kernel
@pytest.mark.skipif(HAS_PMU, reason="this machine has hardware performance counters")
def test_hardware_event_without_a_pmu_says_so_in_one_line():
    with pytest.raises(ProbeUnavailableError) as e:
        attach(-1, counter("hardware", "cycles:1000000",
                           PerfEvent(PerfType.HARDWARE, PerfHwId.CPU_CYCLES, 1000000)))
    assert e.value.errno == errno.ENOENT
    assert str(e.value) == ("hardware:cycles:1000000: this machine has no hardware performance counters "
                            "(perf_event_open: ENOENT)")


def test_a_counter_needs_its_event():
    with pytest.raises(ValueError, match="needs an event"):
        attach(-1, AttachPoint("software", "page-faults", attach_kind="perf_counter"))
