"""End-to-end tests run the real `pybpf` command. Helpers to start it, wait until it has attached,
stop it with a signal, and a check after every kernel test that nothing of ours stays behind:
every pybpf process we started has exited, and no pybpf program (named p0, p1, ...) loaded during
the test is still in the kernel unless a live process holds it (kernel_objects.py says how other
people's runs meanwhile are told apart)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))     # e2e_helpers, kernel_objects

from e2e_helpers import STARTED, App  # noqa: E402
from kernel_objects import pybpf_programs_in_kernel, wait_for_release  # noqa: E402


@pytest.fixture(autouse=True)
def leaves_nothing_behind(request):
    if not request.node.get_closest_marker("kernel") or os.geteuid() != 0:
        yield
        return
    before = pybpf_programs_in_kernel()
    STARTED.clear()
    yield
    still_running = [p for p in STARTED if p.poll() is None]
    for p in still_running:
        p.kill()
        p.wait(timeout=10)
    assert not still_running, "a pybpf process was left running"
    leaked = wait_for_release(before)
    assert not leaked, f"pybpf programs {sorted(leaked)} stayed loaded after the test"


@pytest.fixture
def app(usdt_app):
    """app(*command) -> an App running USDT_APP (or the command), closed after the test."""
    apps = []

    def start(*command: str) -> App:
        apps.append(App(*(command or (usdt_app,))))
        return apps[-1]
    yield start
    for a in apps:
        a.close()
